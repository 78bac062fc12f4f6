mod unit {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::config::parse::{parse_app_url, parse_public_url};
    use crate::config::*;

    #[test]
    fn durations_take_one_number_and_one_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(
            parse_duration("365d"),
            Ok(Duration::from_secs(365 * 86_400))
        );
        for bad in [
            "",
            "7",
            "d",
            "0s",
            "366d",
            "1.5h",
            "1h30m",
            "-1s",
            "7 d",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retentions_take_a_duration_or_off() {
        assert_eq!(
            parse_retention("30d"),
            Ok(Some(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(parse_retention("1s"), Ok(Some(Duration::from_secs(1))));
        assert_eq!(parse_retention("off"), Ok(None));
        for bad in ["", "forever", "0s", "366d", "on"] {
            assert!(parse_retention(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn smtp_connections_and_rate_are_checked_at_start_up() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let settings = |args: &[&str]| {
            let cli = Cli::parse_from(std::iter::once("x").chain(args.iter().copied()));
            Settings::from_args("sqlite://x.db", &cli.serve)
        };
        let defaults = settings(&[]).expect("valid").delivery;
        assert_eq!(defaults.smtp_connections, 32);
        assert_eq!(defaults.smtp_rate, None);
        let set = settings(&["--smtp-connections", "128", "--smtp-rate", "14/1s"])
            .expect("valid")
            .delivery;
        assert_eq!(set.smtp_connections, 128);
        assert_eq!(
            set.smtp_rate,
            Some(Limit {
                max: 14,
                window: Duration::from_secs(1)
            })
        );
        let hourly = settings(&["--smtp-rate", "1000/1h"])
            .expect("valid")
            .delivery;
        assert_eq!(hourly.smtp_rate.map(|r| r.window.as_secs()), Some(3_600));
        assert_eq!(
            settings(&["--smtp-rate", "off"])
                .expect("valid")
                .delivery
                .smtp_rate,
            None
        );
        for bad in ["0", "-1", "many", "1025", ""] {
            let flag = format!("--smtp-connections={bad}");
            let error = settings(&[flag.as_str()]).expect_err(bad);
            assert!(
                error.starts_with("CBH_SMTP_CONNECTIONS (--smtp-connections): "),
                "{error}"
            );
        }
        for bad in [
            "14", "0/1s", "14/0s", "14/s", "fast", "14/1sec", "-1/1s", "",
        ] {
            let flag = format!("--smtp-rate={bad}");
            let error = settings(&[flag.as_str()]).expect_err(bad);
            assert!(
                error.starts_with("CBH_SMTP_RATE (--smtp-rate): "),
                "{error}"
            );
            assert!(error.contains("such as 14/1s"), "{error}");
        }
    }

    #[test]
    fn the_retention_settings_name_their_variable_when_wrong() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let args = Cli::parse_from(["x", "--outbox-retention", "a month"]).serve;
        let error = Settings::from_args("sqlite://x.db", &args).expect_err("refused");
        assert!(error.contains("CBH_OUTBOX_RETENTION"), "{error}");
        let args = Cli::parse_from(["x", "--audit-retention", "off"]).serve;
        let settings = Settings::from_args("sqlite://x.db", &args).expect("valid");
        assert_eq!(settings.retention.audit, None);
        assert_eq!(
            settings.retention,
            RetentionSettings {
                audit: None,
                ..RetentionSettings::default()
            }
        );
    }

    #[test]
    fn limits_take_a_count_and_a_window() {
        assert_eq!(
            Limit::parse("200/1h"),
            Ok(Some(Limit {
                max: 200,
                window: Duration::from_secs(3_600)
            }))
        );
        assert_eq!(Limit::parse("off"), Ok(None));
        for bad in ["", "200", "0/1h", "x/1h", "5/1x", "5/"] {
            assert!(Limit::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_urls_name_relative_and_absolute_files() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/x.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/x.db")))
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        let pg = DatabaseUrl::parse("postgres://cbh:s3cret@db.example:5432/cbh").expect("valid");
        assert!(matches!(pg, DatabaseUrl::Postgres(_)));
        assert!(!format!("{pg:?}").contains("s3cret"));
        let error = DatabaseUrl::parse("postgres://cbh:s3cret@/x")
            .err()
            .unwrap_or_default();
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn postgres_tls_parameters_are_checked_at_start_up() {
        let ok = DatabaseUrl::parse("postgres://u:p@db.example/app?sslmode=verify-full");
        assert!(ok.is_ok(), "{ok:?}");
        let typo = DatabaseUrl::parse("postgres://u:secret@db.example/app?sslmode=verify_full")
            .expect_err("typo");
        assert!(typo.contains("sslmode=verify_full"), "{typo}");
        assert!(!typo.contains("secret"), "{typo}");
        let missing = DatabaseUrl::parse(
            "postgres://db.example/app?sslmode=verify-ca&sslrootcert=/no/ca.pem",
        )
        .expect_err("missing CA file");
        assert!(missing.contains("sslrootcert=/no/ca.pem"), "{missing}");
    }

    #[test]
    fn a_secret_file_gives_its_twin_less_one_newline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("url");
        std::fs::write(&file, "smtp://u:p@relay\n\n").expect("write");
        let only_file = |var: &str| (var == "CBH_SMTP_URL_FILE").then(|| file.clone().into());
        assert_eq!(
            secret_from_file("CBH_SMTP_URL", only_file),
            Ok(Some("smtp://u:p@relay\n".to_owned()))
        );
        assert_eq!(secret_from_file("CBH_SMTP_URL", |_| None), Ok(None));
        let both =
            secret_from_file("CBH_SMTP_URL", |_| Some(file.clone().into())).expect_err("both set");
        assert!(
            both.contains("CBH_SMTP_URL and CBH_SMTP_URL_FILE"),
            "{both}"
        );
        let gone = dir.path().join("gone");
        let unreadable = secret_from_file("CBH_DATABASE_URL", |var| {
            (var == "CBH_DATABASE_URL_FILE").then(|| gone.clone().into())
        })
        .expect_err("unreadable");
        assert!(
            unreadable.starts_with("CBH_DATABASE_URL_FILE: cannot read"),
            "{unreadable}"
        );
    }

    #[test]
    fn the_relay_is_described_without_its_password() {
        let relay = SmtpSettings::parse("smtps://mailer:hunter2@mail.x.org").expect("valid");
        assert_eq!(
            relay.describe(),
            "SMTP relay mail.x.org:465, TLS (smtps), as mailer"
        );
        assert!(!format!("{relay:?}").contains("hunter2"));
        let starttls = SmtpSettings::parse("smtp://[::1]:2525?tls=starttls").expect("valid");
        assert_eq!(
            starttls.describe(),
            "SMTP relay [::1]:2525, STARTTLS required"
        );
    }

    #[test]
    fn smtp_urls() {
        let plain = SmtpSettings::parse("smtp://127.0.0.1:2525").expect("valid");
        assert_eq!((plain.port, plain.tls), (2525, SmtpTls::None));
        let auth = SmtpSettings::parse("smtp://me:p%40ss@mail.x.org?tls=starttls").expect("valid");
        assert_eq!(auth.tls, SmtpTls::StartTls);
        assert_eq!(auth.port, 587);
        assert_eq!(auth.credentials, Some(("me".into(), "p@ss".into())));
        assert!(!format!("{auth:?}").contains("p@ss"));
        assert_eq!(
            SmtpSettings::parse("smtps://mail.x.org")
                .expect("valid")
                .tls,
            SmtpTls::Implicit
        );
        assert!(SmtpSettings::parse("http://x").is_err());
        assert!(SmtpSettings::parse("smtp://x?tls=maybe").is_err());
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        assert_eq!(
            parse_public_url("https://hub.example.org/"),
            Ok("https://hub.example.org".into())
        );
        assert!(parse_public_url("ftp://x").is_err());
    }

    #[test]
    fn app_url_must_be_an_absolute_http_url() {
        assert_eq!(
            parse_app_url("https://hub.example.org/app/#/projects"),
            Ok("https://hub.example.org/app/#/projects".into())
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://x.org",
            "https://",
        ] {
            let error = parse_app_url(bad).expect_err(bad);
            assert!(error.starts_with("CBH_APP_URL (--app-url)"), "{error}");
        }
    }
}

/// `CBH_REMINDERS`: the default, `off`, and a refusal that names the variable.
mod reminder_flags {
    use std::time::Duration;

    use clap::Parser;

    use crate::config::{ServeArgs, Settings, parse_reminders};

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, String> {
        let serve = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        Settings::from_args("sqlite://x.db", &serve.args)
    }

    #[test]
    fn reminders_default_to_two_and_five_days_and_turn_off() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            settings(&[]).expect("valid").reminders,
            vec![2 * day, 5 * day]
        );
        assert!(
            settings(&["--reminders", "off"])
                .expect("valid")
                .reminders
                .is_empty()
        );
        assert_eq!(
            parse_reminders("2s,4s"),
            Ok(vec![Duration::from_secs(2), Duration::from_secs(4)])
        );
    }

    #[test]
    fn bad_reminders_stop_start_up_naming_the_variable() {
        for bad in [
            "",
            "2d,",
            "5d,2d",
            "2d,2d",
            "soon",
            "0s",
            "1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s",
        ] {
            let error = settings(&["--reminders", bad]).expect_err(bad);
            assert!(
                error.starts_with("CBH_REMINDERS (--reminders): "),
                "{error}"
            );
        }
    }
}

/// The cookie flags reach `Settings` through `from_args`, and a bad one stops start-up naming
/// its variable.
mod cookie_flags {
    use clap::Parser;

    use crate::config::{ServeArgs, Settings};

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, String> {
        let serve = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        Settings::from_args("sqlite://x.db", &serve.args)
    }

    #[test]
    fn defaults_and_overrides() {
        let defaults = settings(&[]).expect("valid");
        assert_eq!(
            defaults.cookies.session_name("chembiohub"),
            "chembiohub_sessionid"
        );
        assert_eq!(defaults.cookies.scope("chembiohub"), "Path=/");
        let custom = settings(&[
            "--namespaces",
            "a,b",
            "--session-cookie",
            "sid_{ns}",
            "--csrf-cookie",
            "csrf_{ns}",
            "--cookie-path",
            "/{ns}/",
            "--cookie-domain",
            "platform.example",
        ])
        .expect("valid");
        assert_eq!(custom.cookies.session_name("b"), "sid_b");
        assert_eq!(custom.cookies.csrf_name("a"), "csrf_a");
        assert_eq!(
            custom.cookies.scope("a"),
            "Path=/a/; Domain=platform.example"
        );
        let error = settings(&["--cookie-domain", "a b"])
            .map(|_| ())
            .expect_err("refused");
        assert!(
            error.starts_with("CBH_COOKIE_DOMAIN (--cookie-domain)"),
            "{error}"
        );
    }
}

/// Properties of `parse_duration` over every input.
mod properties {
    use std::time::Duration;

    use proptest::prelude::*;

    use crate::config::parse_duration;

    const MAX_SECS: u64 = 365 * 86_400;

    fn unit_secs(unit: &str) -> u64 {
        match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            _ => 86_400,
        }
    }

    proptest! {
        #[test]
        fn any_string_is_a_duration_in_range_or_an_error(raw in any::<String>()) {
            match parse_duration(&raw) {
                Ok(duration) => {
                    prop_assert!((1..=MAX_SECS).contains(&duration.as_secs()));
                    // Written back in seconds, it reads the same.
                    let again = parse_duration(&format!("{}s", duration.as_secs()));
                    prop_assert_eq!(again, Ok(duration));
                }
                Err(message) => prop_assert!(message.contains("is not a duration")),
            }
        }

        #[test]
        fn a_number_and_a_unit_is_their_product_when_in_range(
            number in prop_oneof![0u64..1_000, any::<u64>()],
            unit in prop::sample::select(vec!["s", "m", "h", "d"]),
            pad in "[ \t]{0,2}",
        ) {
            let parsed = parse_duration(&format!("{pad}{number}{unit}{pad}"));
            let secs = number.checked_mul(unit_secs(unit)).filter(|s| (1..=MAX_SECS).contains(s));
            prop_assert_eq!(parsed.ok(), secs.map(Duration::from_secs));
        }

        #[test]
        fn anything_but_digits_then_one_unit_is_refused(
            raw in "[-+ .0-9smhdSMHDµ٣]{0,8}",
        ) {
            let trimmed = raw.trim();
            let shaped = trimmed.len() >= 2
                && trimmed.as_bytes()[..trimmed.len() - 1].iter().all(u8::is_ascii_digit)
                && matches!(trimmed.as_bytes()[trimmed.len() - 1], b's' | b'm' | b'h' | b'd');
            if !shaped {
                prop_assert!(parse_duration(&raw).is_err(), "{raw:?}");
            }
        }
    }
}

/// `--webhook-timeout` (`CBH_WEBHOOK_TIMEOUT`) reaches the webhook settings.
mod webhook_flags {
    use std::time::Duration;

    use clap::Parser;

    use crate::config::{ServeArgs, Settings};

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, String> {
        let serve = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        Settings::from_args("sqlite://x.db", &serve.args)
    }

    #[test]
    fn the_webhook_timeout_defaults_to_ten_seconds_and_is_read() {
        let timeout = |flags: &[&str]| settings(flags).expect("valid").webhooks.timeout;
        assert_eq!(timeout(&[]), Duration::from_secs(10));
        assert_eq!(
            timeout(&["--webhook-timeout", "3s"]),
            Duration::from_secs(3)
        );
        let error = settings(&["--webhook-timeout", "0"]).expect_err("no unit");
        assert!(
            error.starts_with("CBH_WEBHOOK_TIMEOUT (--webhook-timeout): "),
            "{error}"
        );
    }
}
