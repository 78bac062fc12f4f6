//! Reading the catalog files: the built-in ones (`locales/`, listed by `build.rs`) and an
//! operator's (`CBH_TEMPLATE_DIR/locales/{lang}/*.ftl`), into one Fluent bundle per language.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use fluent_bundle::FluentResource;
use fluent_syntax::ast::Entry;
use unic_langid::LanguageIdentifier;

/// Thread-safe (its memoizer is behind a mutex), so one `Catalogs` serves every request.
pub(super) type Bundle = fluent_bundle::concurrent::FluentBundle<FluentResource>;

/// `(language, file name, contents)` of every `locales/{lang}/*.ftl`, sorted.
const BUILT_IN: &[(&str, &str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalogs.rs"));

pub(super) struct Loaded {
    pub bundles: BTreeMap<String, Bundle>,
    pub keys: BTreeMap<String, BTreeSet<String>>,
}

pub(super) fn load(override_dir: Option<&Path>) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded {
        bundles: BTreeMap::new(),
        keys: BTreeMap::new(),
    };
    for (lang, name, source) in BUILT_IN {
        let origin = format!("locales/{lang}/{name}");
        let resource = parse(&origin, source)?;
        loaded.add(lang, &origin, resource, false)?;
    }
    if let Some(dir) = override_dir {
        for (lang, path) in override_files(&dir.join("locales"))? {
            let origin = path.display().to_string();
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the catalog {origin}"))?;
            let resource = parse(&origin, &source)?;
            loaded.add(&lang, &origin, resource, true)?;
        }
    }
    Ok(loaded)
}

impl Loaded {
    /// Adds a file's messages to its language's bundle. Built-in files must not define a key
    /// twice (a mistake of ours); an operator's file replaces what it redefines.
    fn add(
        &mut self,
        lang: &str,
        origin: &str,
        resource: FluentResource,
        overriding: bool,
    ) -> anyhow::Result<()> {
        let keys = self.keys.entry(lang.to_owned()).or_default();
        for entry in resource.entries() {
            if let Entry::Message(message) = entry {
                keys.insert(message.id.name.to_owned());
            }
        }
        if !self.bundles.contains_key(lang) {
            let id: LanguageIdentifier = lang
                .parse()
                .with_context(|| format!("{origin}: {lang:?} is not a BCP 47 language tag"))?;
            let mut bundle = Bundle::new_concurrent(vec![id]);
            // No Unicode isolation marks around the values: emails are mostly plain text, and
            // the marks would change the English emails' bytes.
            bundle.set_use_isolating(false);
            self.bundles.insert(lang.to_owned(), bundle);
        }
        let Some(bundle) = self.bundles.get_mut(lang) else {
            bail!("{origin}: no bundle for {lang}");
        };
        if overriding {
            bundle.add_resource_overriding(resource);
        } else if let Err(errors) = bundle.add_resource(resource) {
            bail!("{origin}: {errors:?}");
        }
        Ok(())
    }
}

/// Parses a file; a syntax error names the file and line.
fn parse(origin: &str, source: &str) -> anyhow::Result<FluentResource> {
    FluentResource::try_new(source.to_owned()).map_err(|(_, errors)| {
        let described: Vec<String> = errors
            .iter()
            .map(|error| {
                let line = line_of(source, error.pos.start);
                format!("{origin}:{line}: {}", error.kind)
            })
            .collect();
        anyhow::anyhow!("the catalog does not parse: {}", described.join("; "))
    })
}

fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `(language, file)` for each `{dir}/{lang}/*.ftl`, sorted; none when `dir` does not exist.
/// A directory whose name is not a language tag is refused rather than silently ignored.
fn override_files(dir: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(lang) = super::normalize_tag(&name) else {
            bail!(
                "{}: {name:?} is not a BCP 47 language tag (such as de or pt-BR)",
                path.display()
            );
        };
        for file in
            std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?
        {
            let file = file
                .with_context(|| format!("reading {}", path.display()))?
                .path();
            if file.extension().is_some_and(|ext| ext == "ftl") {
                files.push((lang.clone(), file));
            }
        }
    }
    files.sort();
    Ok(files)
}
