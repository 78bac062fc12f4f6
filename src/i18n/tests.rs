use std::sync::Arc;

use super::*;

fn built_in() -> Catalogs {
    Catalogs::load(None).expect("the built-in catalogs load")
}

fn write(dir: &Path, lang: &str, file: &str, text: &str) {
    let folder = dir.join("locales").join(lang);
    std::fs::create_dir_all(&folder).expect("create the folder");
    std::fs::write(folder.join(file), text).expect("write the catalog");
}

#[test]
fn ships_english_german_and_french() {
    assert_eq!(built_in().languages(), ["de", "en", "fr"]);
}

#[test]
fn every_shipped_catalog_has_exactly_the_keys_of_english() {
    let catalogs = built_in();
    let english = catalogs.keys(FALLBACK);
    assert!(
        english.contains("month-11"),
        "English has keys: {english:?}"
    );
    for lang in catalogs.languages() {
        let keys = catalogs.keys(&lang);
        let missing: Vec<_> = english.difference(&keys).collect();
        let extra: Vec<_> = keys.difference(&english).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        assert!(extra.is_empty(), "{lang} has keys English lacks: {extra:?}");
    }
}

#[test]
fn negotiation_finds_the_closest_language() {
    let catalogs = built_in();
    let negotiate = |requested: &[&str], default: &str| catalogs.negotiate(requested, default);
    assert_eq!(negotiate(&["de-AT"], "en"), "de");
    assert_eq!(negotiate(&["fr-CA", "de"], "en"), "fr");
    assert_eq!(negotiate(&["es", "de-CH"], "en"), "de");
    assert_eq!(negotiate(&["es"], "fr"), "fr");
    assert_eq!(negotiate(&[], "de"), "de");
    assert_eq!(negotiate(&["not a tag", "FR"], "en"), "fr");
    // A default we do not have is answered in English.
    assert_eq!(negotiate(&["ja"], "es"), "en");
}

#[test]
fn accept_language_is_ordered_by_quality() {
    assert_eq!(
        parse_accept_language("en;q=0.5, de-AT, fr;q=0.8, *;q=0.1, it;q=0"),
        ["de-AT", "fr", "en"]
    );
    assert_eq!(parse_accept_language("fr-ch, fr;q=0.9"), ["fr-CH", "fr"]);
    assert_eq!(parse_accept_language(""), Vec::<String>::new());
    assert_eq!(parse_accept_language("!!, de;q=abc, en"), ["en"]);
}

#[test]
fn tags_are_checked_and_normalized() {
    assert_eq!(normalize_tag("de-at").as_deref(), Some("de-AT"));
    assert_eq!(normalize_tag("zh-hant-tw").as_deref(), Some("zh-Hant-TW"));
    assert_eq!(
        normalize_tag("de-DE-u-co-phonebk").as_deref(),
        Some("de-DE")
    );
    for bad in ["", "x", "de_AT", "de--AT", "-de", "en-", "fr FR", "123"] {
        assert!(!is_well_formed(bad), "{bad:?} should be refused");
    }
}

#[test]
fn text_falls_back_to_english_then_to_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "es", "dates.ftl", "month-1 = enero\n");
    let catalogs = Catalogs::load(Some(dir.path())).expect("loads");
    assert_eq!(catalogs.text("es", "month-1", &[]), "enero");
    assert_eq!(catalogs.text("es", "month-2", &[]), "February");
    assert_eq!(catalogs.text("de", "no-such-key", &[]), "no-such-key");
    assert_eq!(
        catalogs.fallbacks(),
        [
            ("de".to_owned(), "no-such-key".to_owned()),
            ("es".to_owned(), "month-2".to_owned())
        ]
    );
}

#[test]
fn an_override_replaces_one_key_and_a_new_folder_adds_a_language() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "de", "mine.ftl", "month-3 = Maerz\n");
    write(dir.path(), "pt-br", "dates.ftl", "month-3 = março\n");
    let catalogs = Catalogs::load(Some(dir.path())).expect("loads");
    assert_eq!(catalogs.text("de", "month-3", &[]), "Maerz");
    assert_eq!(catalogs.text("de", "month-4", &[]), "April");
    assert_eq!(catalogs.languages(), ["de", "en", "fr", "pt-BR"]);
    assert_eq!(catalogs.negotiate(&["pt-BR"], "en"), "pt-BR");
    assert_eq!(catalogs.text("pt-BR", "month-3", &[]), "março");
}

#[test]
fn a_broken_override_names_its_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "fr",
        "broken.ftl",
        "month-1 = janvier\n\nmonth-2 = { $day\n",
    );
    let error = format!(
        "{:#}",
        Catalogs::load(Some(dir.path())).err().expect("refused")
    );
    assert!(error.contains("broken.ftl:4"), "{error}");
}

#[test]
fn a_folder_that_is_not_a_language_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "german_DE", "dates.ftl", "month-1 = Januar\n");
    let error = format!(
        "{:#}",
        Catalogs::load(Some(dir.path())).err().expect("refused")
    );
    assert!(error.contains("german_DE"), "{error}");
}

#[test]
fn dates_are_written_as_each_language_writes_them() {
    let catalogs = built_in();
    let at = time::macros::datetime!(2026-11-30 14:05 UTC);
    let first = time::macros::datetime!(2027-01-01 09:00 UTC);
    let date = |lang, at| catalogs.format_date(lang, at, DateStyle::Date);
    assert_eq!(date("en", at), "30 November 2026");
    assert_eq!(date("de", at), "30. November 2026");
    assert_eq!(date("fr", at), "30 novembre 2026");
    assert_eq!(date("fr", first), "1er janvier 2027");
    assert_eq!(date("de-CH", first), "1. Januar 2027");
    let datetime = |lang| catalogs.format_date(lang, at, DateStyle::DateTime);
    assert_eq!(datetime("en"), "30 November 2026 at 14:05");
    assert_eq!(datetime("de"), "30. November 2026 um 14:05 Uhr");
    assert_eq!(datetime("fr"), "30 novembre 2026 à 14\u{a0}h\u{a0}05");
    assert!(catalogs.fallbacks().is_empty());
}

#[test]
fn templates_translate_and_escape_arguments_in_html() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "en",
        "test.ftl",
        "hello = Hello <b>{ $name }</b>, { $count ->\n    [one] one project\n   *[other] { $count } projects\n}\n",
    );
    let catalogs = Arc::new(Catalogs::load(Some(dir.path())).expect("loads"));
    let mut env = minijinja::Environment::new();
    catalogs.register(&mut env);
    env.add_template(
        "a.html",
        "{{ t('hello', name=name, count=n) }} {{ when|date }}",
    )
    .expect("compiles");
    env.add_template(
        "a.txt",
        "{{ t('hello', name=name, count=n) }} {{ when|datetime }}",
    )
    .expect("compiles");
    let context = minijinja::context! {
        lang => "de", name => "<i>Bob</i>", n => 2, when => "2026-11-30T14:05:00.000Z"
    };
    let html = env
        .get_template("a.html")
        .and_then(|t| t.render(&context))
        .expect("renders");
    assert_eq!(
        html,
        "Hello <b>&lt;i&gt;Bob&lt;&#x2f;i&gt;</b>, 2 projects 30. November 2026"
    );
    let text = env
        .get_template("a.txt")
        .and_then(|t| t.render(&context))
        .expect("renders");
    assert_eq!(
        text,
        "Hello <b><i>Bob</i></b>, 2 projects 30. November 2026 um 14:05 Uhr"
    );
}

#[test]
fn a_template_without_lang_is_an_error() {
    let catalogs = Arc::new(built_in());
    let mut env = minijinja::Environment::new();
    catalogs.register(&mut env);
    let error = env
        .render_str("{{ t('month-1') }}", minijinja::context! {})
        .expect_err("refused");
    assert!(error.to_string().contains("lang"), "{error}");
}

#[test]
fn catalogs_are_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Catalogs>();
}
