//! The reference part of docs/DATASETS.md cannot drift from the code: every example block it
//! marks is parsed by the catalog's own parsers, the examples together use every key those
//! parsers accept and every check kind, the reference names each of them in its section, and
//! the examples put together in a dataset folder pass `landfall dataset check`, SQL included.
//! tests/fixtures/datasets/every_key, a dataset using every key, every column type and every
//! check kind with models that run, is held to the same.
//!
//! An example block is a fenced block whose info string names, after its language, the file of
//! a dataset folder it shows; a block without that second word is not an example:
//!
//! - `toml dataset.toml`: a whole definition. The first one is the dataset the other examples
//!   belong to (an `extract.toml` is checked against it, and it is the assembled folder's).
//! - `toml checks.toml`, `toml exports.toml`, `toml extract.toml`: entries of that file; the
//!   blocks of one file, in the document's order, make the whole file.
//! - `sql models/<name>.sql`: a model; its header must name `<name>`.
//! - `sql migrations/<name>.sql`: a migration of the example dataset.
//!
//! The keys, check kinds and column types to cover are not listed here: they are read from the
//! parsers themselves, from the message each gives for a key (or kind, or type) it does not
//! know, so a key added to a parser fails this test until the reference shows it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::mem::discriminant;
use std::path::{Path, PathBuf};

use catalog::checks::{Check, Severity};
use catalog::exports::ReportExport;
use catalog::extract::{ExtractMode, Origin, SourceExtract};
use catalog::models::{Header, Model, ModelSet};
use catalog::{ColumnType, Dataset, Datasets, Mode};
use landfall_tests::TestEnv;

/// The document, relative to the repository's root.
const DOC: &str = "docs/DATASETS.md";
/// The heading the reference part starts at.
const REFERENCE: &str = "## Reference";
/// The test dataset that uses every key.
const EVERY_KEY: &str = "tests/fixtures/datasets/every_key";

/// Keys a parser accepts as the older name of another (`(older, current)`): the reference
/// names them, but no example can use both names at once. Each is checked to be an alias.
const ALIASES: &[(&str, &str)] = &[("reject_threshold", "reject_max_share")];

/// A key no parser knows, to read the known ones from the message about it.
const PROBE: &str = "landfall_doc_probe";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository folder")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|error| panic!("reading {relative}: {error}"))
}

// --- The example blocks ------------------------------------------------------------------------

/// Which file of a dataset folder an example shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Definition,
    Checks,
    Exports,
    Extract,
    Model,
    Migration,
}

/// One marked block of the document.
struct Example {
    /// The 1-based line of its opening fence.
    line: usize,
    kind: FileKind,
    /// The file as the info string names it: `checks.toml`, `models/fact_sales.sql`.
    file: String,
    body: String,
}

impl Example {
    /// Where a problem with it is: the document's line and the file.
    fn at(&self) -> String {
        format!("{DOC}:{}: {}", self.line, self.file)
    }

    /// The model's name, for a model.
    fn stem(&self) -> &str {
        let name = self.file.rsplit('/').next().unwrap_or_default();
        name.strip_suffix(".sql").unwrap_or(name)
    }
}

/// The file an info string's second word names, with the language it must be in.
fn file_kind(file: &str) -> Option<(FileKind, &'static str)> {
    let sql_in = |folder: &str| {
        file.strip_prefix(folder)
            .and_then(|name| name.strip_suffix(".sql"))
            .is_some_and(|stem| !stem.is_empty() && !stem.contains('/'))
    };
    Some(match file {
        "dataset.toml" => (FileKind::Definition, "toml"),
        "checks.toml" => (FileKind::Checks, "toml"),
        "exports.toml" => (FileKind::Exports, "toml"),
        "extract.toml" => (FileKind::Extract, "toml"),
        _ if sql_in("models/") => (FileKind::Model, "sql"),
        _ if sql_in("migrations/") => (FileKind::Migration, "sql"),
        _ => return None,
    })
}

/// The document's marked blocks; a block whose second word names no file is a problem.
fn examples(markdown: &str) -> (Vec<Example>, Vec<String>) {
    let mut examples = Vec::new();
    let mut problems = Vec::new();
    // The block being read: its line, its info string and its text so far.
    let mut open: Option<(usize, String, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match &mut open {
            Some(_) if fence => {
                let (line, info, body) = open.take().expect("an open block");
                let mut words = info.split_whitespace();
                let (language, file) = (words.next().unwrap_or_default(), words.next());
                let Some(file) = file else {
                    continue;
                };
                match file_kind(file) {
                    Some((kind, expected)) if expected == language => examples.push(Example {
                        line,
                        kind,
                        file: file.to_owned(),
                        body,
                    }),
                    Some((_, expected)) => problems.push(format!(
                        "{DOC}:{line}: the block of {file} is marked `{language}`, not `{expected}`"
                    )),
                    None => problems.push(format!(
                        "{DOC}:{line}: `{info}`: {file} is no file of a dataset folder (dataset.toml, checks.toml, exports.toml, extract.toml, models/<name>.sql, migrations/<name>.sql)"
                    )),
                }
            }
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if fence => {
                let info = line.trim_start().trim_start_matches('`').trim().to_owned();
                open = Some((index + 1, info, String::new()));
            }
            None => {}
        }
    }
    if let Some((line, _, _)) = open {
        problems.push(format!("{DOC}:{line}: the block is never closed"));
    }
    (examples, problems)
}

/// The blocks of one file, in order.
fn of(examples: &[Example], kind: FileKind) -> impl Iterator<Item = &Example> {
    examples.iter().filter(move |example| example.kind == kind)
}

/// The blocks of one file, in order, as one file.
fn joined(examples: &[Example], kind: FileKind) -> String {
    of(examples, kind)
        .map(|example| example.body.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the examples declare, parsed.
#[derive(Default)]
struct Parsed {
    /// The first definition: the dataset the other examples belong to.
    dataset: Option<Dataset>,
    checks: Vec<Check>,
    exports: Vec<ReportExport>,
    extract: Vec<SourceExtract>,
    models: Vec<Model>,
}

/// Every example parsed with the parser of its file, each block on its own and then the blocks
/// of a file together (a name used twice across blocks); every problem names the block's line.
fn parse_examples(examples: &[Example]) -> (Parsed, Vec<String>) {
    let mut parsed = Parsed::default();
    let mut problems = Vec::new();
    for (index, example) in of(examples, FileKind::Definition).enumerate() {
        match Datasets::parse(&example.body) {
            Ok(dataset) if index == 0 => parsed.dataset = Some(dataset),
            Ok(_) => {}
            Err(error) => problems.push(format!("{}: {error:#}", example.at())),
        }
    }
    let mut each_parsed = true;
    let mut parse_each = |kind: FileKind, parse: &dyn Fn(&str) -> anyhow::Result<usize>| {
        for example in of(examples, kind) {
            if let Err(error) = parse(&example.body) {
                problems.push(format!("{}: {error:#}", example.at()));
                each_parsed = false;
            }
        }
    };
    parse_each(FileKind::Checks, &|text| {
        Ok(catalog::checks::parse(text)?.len())
    });
    parse_each(FileKind::Exports, &|text| {
        Ok(catalog::exports::parse(text)?.len())
    });
    if let Some(dataset) = &parsed.dataset {
        parse_each(FileKind::Extract, &|text| {
            Ok(catalog::extract::parse(text, dataset)?.len())
        });
    }
    if each_parsed {
        let whole = |kind: FileKind| {
            (
                joined(examples, kind),
                format!("{DOC}: the {kind:?} blocks together"),
            )
        };
        let (text, what) = whole(FileKind::Checks);
        match catalog::checks::parse(&text) {
            Ok(checks) => parsed.checks = checks,
            Err(error) => problems.push(format!("{what}: {error:#}")),
        }
        let (text, what) = whole(FileKind::Exports);
        match catalog::exports::parse(&text) {
            Ok(exports) => parsed.exports = exports,
            Err(error) => problems.push(format!("{what}: {error:#}")),
        }
        if let Some(dataset) = &parsed.dataset {
            let (text, what) = whole(FileKind::Extract);
            match catalog::extract::parse(&text, dataset) {
                Ok(extract) => parsed.extract = extract,
                Err(error) => problems.push(format!("{what}: {error:#}")),
            }
        }
    }
    for example in of(examples, FileKind::Model) {
        let header = Header::read(&example.body);
        match header.name(example.stem()) {
            Ok(name) => parsed.models.push(Model {
                name: name.to_owned(),
                depends_on: header
                    .depends_on
                    .iter()
                    .map(|(_, name)| name.clone())
                    .collect(),
                sql: example.body.clone(),
            }),
            // The header's lines count from the block's first line, the one after the fence.
            Err((line, problem)) => problems.push(format!(
                "{DOC}:{}: {}: {problem}",
                example.line + line.unwrap_or(1),
                example.file
            )),
        }
    }
    if let Err(error) = ModelSet::order(parsed.models.clone()) {
        problems.push(format!("{DOC}: the model blocks together: {error:#}"));
    }
    (parsed, problems)
}

/// The document's examples, each of which parses.
fn reference_examples() -> (String, Vec<Example>, Parsed) {
    let markdown = read(DOC);
    let (examples, mut problems) = examples(&markdown);
    let (parsed, parse_problems) = parse_examples(&examples);
    problems.extend(parse_problems);
    assert!(
        problems.is_empty(),
        "examples of {DOC} that do not parse:\n{}",
        problems.join("\n")
    );
    (markdown, examples, parsed)
}

// --- What the parsers know ---------------------------------------------------------------------

/// The keys a parser's message for the unknown key [`PROBE`] lists as expected.
fn expected_keys(what: &str, result: anyhow::Result<impl Sized>) -> Vec<String> {
    let message = match result {
        Ok(_) => panic!("{what}: the unknown key {PROBE} was accepted"),
        Err(error) => format!("{error:#}"),
    };
    let unknown = format!("unknown field `{PROBE}`, expected ");
    let start = message
        .find(&unknown)
        .unwrap_or_else(|| panic!("{what}: no list of known keys in: {message}"))
        + unknown.len();
    let keys: Vec<String> = message[start..]
        .lines()
        .next()
        .unwrap_or_default()
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "{what}: no keys read from: {message}");
    keys
}

/// The text between `before` and the last `after` on the line `before` is on.
fn listed_after<'a>(message: &'a str, before: &str, after: char) -> &'a str {
    let start = message
        .find(before)
        .unwrap_or_else(|| panic!("'{before}' not in: {message}"))
        + before.len();
    let line = message[start..].lines().next().unwrap_or_default();
    &line[..line.rfind(after).unwrap_or(line.len())]
}

/// Every key, check kind and column type the parsers know.
struct Known {
    definition: Vec<String>,
    source: Vec<String>,
    column: Vec<String>,
    checks_file: Vec<String>,
    check: Vec<String>,
    /// Each kind (in the parser's order) with the keys of its own it takes.
    kinds: BTreeMap<String, Vec<String>>,
    exports_file: Vec<String>,
    export: Vec<String>,
    extract_file: Vec<String>,
    extract: Vec<String>,
    /// The column types as the parser lists them, `numeric(p,s)` among them.
    types: Vec<String>,
}

fn known() -> Known {
    let definition = |text: String| Datasets::parse(&text);
    let probe_dataset =
        Datasets::parse("name = \"probe\"\n[[sources]]\nname = \"probe\"\ncolumns = []\n")
            .expect("a minimal definition");
    let check = |fields: &str| {
        catalog::checks::parse(&format!(
            "[[checks]]\nname = \"probe\"\nseverity = \"warn\"\n{fields}\n"
        ))
    };
    let kinds_message = format!(
        "{:#}",
        check(&format!("kind = \"{PROBE}\"")).expect_err("an unknown kind")
    );
    let mut kinds = BTreeMap::new();
    for kind in listed_after(&kinds_message, "is not one of: ", '\n').split(", ") {
        // A key the kind does not take makes the parser list those it does.
        let takes = ["sql", "table"].iter().find_map(|foreign| {
            let message = format!(
                "{:#}",
                check(&format!("kind = \"{kind}\"\n{foreign} = \"x\"")).err()?
            );
            message
                .contains("(it takes: ")
                .then(|| listed_after(&message, "(it takes: ", ')').to_owned())
        });
        let takes = takes.unwrap_or_else(|| panic!("the keys of kind {kind} not found"));
        kinds.insert(
            kind.to_owned(),
            takes.split(", ").map(str::to_owned).collect(),
        );
    }
    let types_message = ColumnType::try_from(PROBE.to_owned()).expect_err("an unknown type");
    let types = listed_after(&types_message, "(use ", ')')
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(str::to_owned)
        .collect();
    Known {
        definition: expected_keys("dataset.toml", definition(format!("{PROBE} = 1\n"))),
        source: expected_keys(
            "[[sources]]",
            definition(format!("name = \"probe\"\n[[sources]]\n{PROBE} = 1\n")),
        ),
        column: expected_keys(
            "columns",
            definition(format!(
                "name = \"probe\"\n[[sources]]\nname = \"probe\"\ncolumns = [{{ {PROBE} = 1 }}]\n"
            )),
        ),
        checks_file: expected_keys(
            "checks.toml",
            catalog::checks::parse(&format!("{PROBE} = 1\n")),
        ),
        check: expected_keys(
            "[[checks]]",
            catalog::checks::parse(&format!("[[checks]]\n{PROBE} = 1\n")),
        ),
        kinds,
        exports_file: expected_keys(
            "exports.toml",
            catalog::exports::parse(&format!("{PROBE} = 1\n")),
        ),
        export: expected_keys(
            "[[exports]]",
            catalog::exports::parse(&format!("[[exports]]\n{PROBE} = 1\n")),
        ),
        extract_file: expected_keys(
            "extract.toml",
            catalog::extract::parse(&format!("{PROBE} = 1\n"), &probe_dataset),
        ),
        extract: expected_keys(
            "extract [[sources]]",
            catalog::extract::parse(&format!("[[sources]]\n{PROBE} = 1\n"), &probe_dataset),
        ),
        types,
    }
}

/// Whether `key` is a parser's older name of another.
fn is_alias(key: &str) -> bool {
    ALIASES.iter().any(|(older, _)| *older == key)
}

/// A column type of the parser's list (`numeric(p,s)` with a precision and scale), as a value
/// to compare kinds of types with.
fn type_of(listed: &str) -> std::mem::Discriminant<ColumnType> {
    let written = listed.replace("(p,s)", "(10,2)");
    discriminant(
        &ColumnType::try_from(written.clone())
            .unwrap_or_else(|error| panic!("type '{written}': {error}")),
    )
}

// --- The keys a file uses ----------------------------------------------------------------------

/// One table of a TOML text as written: its header (`None` before the first), the keys written
/// in it, the keys of the inline tables in it, and its text (header line included).
#[derive(Debug, Default)]
struct Entry {
    header: Option<String>,
    keys: BTreeSet<String>,
    inline_keys: BTreeSet<String>,
    text: String,
}

/// The tables of a TOML text with the keys each uses: a bare key at the start of a line, or
/// after `{` or `,` in an inline table. Strings and comments are skipped, so a `=` in a SQL
/// string is not a key. Enough for the files of a dataset; not a TOML parser.
fn entries(text: &str) -> Vec<Entry> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut starts: Vec<(usize, Option<String>)> = vec![(0, None)];
    let mut keys: Vec<(String, bool)> = Vec::new();
    let mut keys_by_entry: Vec<Vec<(String, bool)>> = Vec::new();
    let (mut brackets, mut braces) = (0usize, 0usize);
    // Only whitespace since the line began; the last significant character began a key's place.
    let (mut line_start, mut key_place) = (true, true);
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            '"' | '\'' => {
                let quote = if at(i + 1) == Some(c) && at(i + 2) == Some(c) {
                    3
                } else {
                    1
                };
                i += quote;
                while let Some(d) = at(i) {
                    if c == '"' && d == '\\' {
                        i += 2;
                    } else if d == c && (1..quote).all(|k| at(i + k) == Some(c)) {
                        i += quote;
                        break;
                    } else {
                        i += 1;
                    }
                }
                (line_start, key_place) = (false, false);
                continue;
            }
            '#' => {
                while at(i).is_some_and(|d| d != '\n') {
                    i += 1;
                }
                continue;
            }
            '\n' => (line_start, key_place) = (true, true),
            '[' if line_start && brackets == 0 && braces == 0 => {
                let begin = i;
                while at(i).is_some_and(|d| d != '\n') {
                    i += 1;
                }
                let line: String = chars[begin..i].iter().map(|&(_, d)| d).collect();
                let header = line.split('#').next().unwrap_or_default();
                let name = header.trim().trim_matches(|d| d == '[' || d == ']').trim();
                keys_by_entry.push(std::mem::take(&mut keys));
                starts.push((chars[begin].0, Some(name.to_owned())));
                continue;
            }
            '[' => (brackets, line_start, key_place) = (brackets + 1, false, false),
            ']' => (brackets, line_start, key_place) = (brackets.saturating_sub(1), false, false),
            '{' => (braces, line_start, key_place) = (braces + 1, false, true),
            '}' => (braces, line_start, key_place) = (braces.saturating_sub(1), false, false),
            ',' => (line_start, key_place) = (false, true),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let begin = i;
                while at(i).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_' || d == '-') {
                    i += 1;
                }
                let word: String = chars[begin..i].iter().map(|&(_, d)| d).collect();
                let mut next = i;
                while at(next).is_some_and(|d| d == ' ' || d == '\t') {
                    next += 1;
                }
                if key_place && at(next) == Some('=') && (braces > 0 || brackets == 0) {
                    keys.push((word, braces > 0));
                }
                (line_start, key_place) = (false, false);
                continue;
            }
            c if c.is_whitespace() => {}
            _ => (line_start, key_place) = (false, false),
        }
        i += 1;
    }
    keys_by_entry.push(keys);
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|(start, _)| *start)
        .chain([text.len()])
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .zip(keys_by_entry)
        .map(|(((start, header), end), keys)| {
            let (inline, plain): (Vec<_>, Vec<_>) =
                keys.into_iter().partition(|(_, inline)| *inline);
            Entry {
                header,
                keys: plain.into_iter().map(|(key, _)| key).collect(),
                inline_keys: inline.into_iter().map(|(key, _)| key).collect(),
                text: text[start..end].to_owned(),
            }
        })
        .collect()
}

/// The keys used, by where they are: `dataset`, `sources`, `columns`, `checks file`, `check`,
/// `kind <name>`, `exports file`, `export`, `extract file`, `extract`.
#[derive(Debug, Default)]
struct Used(BTreeMap<String, BTreeSet<String>>);

impl Used {
    fn add(&mut self, place: &str, keys: impl IntoIterator<Item = String>) {
        self.0.entry(place.to_owned()).or_default().extend(keys);
    }

    fn definition(&mut self, text: &str) {
        for entry in entries(text) {
            match entry.header.as_deref() {
                None => self.add("dataset", entry.keys),
                Some("sources") => {
                    self.add("dataset", ["sources".to_owned()]);
                    self.add("sources", entry.keys);
                    self.add("columns", entry.inline_keys);
                }
                Some("sources.columns") => self.add("columns", entry.keys),
                Some(other) => panic!("dataset.toml: unexpected table [{other}]"),
            }
        }
    }

    /// A checks file's keys, each check's under its kind too.
    fn checks(&mut self, text: &str) {
        for entry in entries(text) {
            let Some(header) = entry.header else {
                self.add("checks file", entry.keys);
                continue;
            };
            self.add("checks file", [header]);
            let checks = catalog::checks::parse(&entry.text)
                .unwrap_or_else(|error| panic!("{error:#}:\n{}", entry.text));
            for check in checks {
                self.add(&format!("kind {}", check.kind.name()), entry.keys.clone());
            }
            self.add("check", entry.keys);
        }
    }

    /// An exports or extract file's keys.
    fn entries_of(&mut self, file: &str, entry_place: &str, text: &str) {
        for entry in entries(text) {
            match entry.header {
                None => self.add(file, entry.keys),
                Some(header) => {
                    self.add(file, [header]);
                    self.add(entry_place, entry.keys);
                }
            }
        }
    }

    fn get(&self, place: &str) -> BTreeSet<String> {
        self.0.get(place).cloned().unwrap_or_default()
    }
}

/// Every known key that the files do not use, as problems (older names excepted).
fn unused(known: &Known, used: &Used, what: &str) -> Vec<String> {
    let mut places: Vec<(String, &Vec<String>)> = vec![
        ("dataset".into(), &known.definition),
        ("sources".into(), &known.source),
        ("columns".into(), &known.column),
        ("checks file".into(), &known.checks_file),
        ("check".into(), &known.check),
        ("exports file".into(), &known.exports_file),
        ("export".into(), &known.export),
        ("extract file".into(), &known.extract_file),
        ("extract".into(), &known.extract),
    ];
    places.extend(
        known
            .kinds
            .iter()
            .map(|(kind, keys)| (format!("kind {kind}"), keys)),
    );
    let mut problems = Vec::new();
    for (place, keys) in places {
        let found = used.get(&place);
        for key in keys.iter().filter(|key| !is_alias(key)) {
            if !found.contains(key) {
                problems.push(format!("{what}: no example of {place} uses `{key}`"));
            }
        }
    }
    problems
}

// --- The reference's sections ------------------------------------------------------------------

/// The text of the section under `heading` in the reference part (up to the next heading of
/// its level or above); headings inside fenced blocks (TOML comments) are not headings.
fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut offset = 0;
    let mut in_fence = false;
    let mut in_reference = false;
    let mut start = None;
    for line in markdown.split_inclusive('\n') {
        let text = line.trim_end();
        if text.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && text.starts_with('#') {
            let depth = text.chars().take_while(|&c| c == '#').count();
            if let Some(start) = start
                && depth <= level
                && text[depth..].starts_with(' ')
            {
                return &markdown[start..offset];
            }
            if text == REFERENCE {
                in_reference = true;
            } else if in_reference && start.is_none() && text == heading {
                start = Some(offset);
            }
        }
        offset += line.len();
    }
    let start =
        start.unwrap_or_else(|| panic!("{DOC}: no section '{heading}' after '{REFERENCE}'"));
    &markdown[start..]
}

/// Every key of `keys` that `text` does not name, as `` `key` `` or, for an array of tables,
/// `` `[[key]]` ``.
fn unnamed(text: &str, heading: &str, keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter(|key| {
            !text.contains(&format!("`{key}`")) && !text.contains(&format!("`[[{key}]]`"))
        })
        .map(|key| format!("{DOC}: section '{heading}' does not name `{key}`"))
        .collect()
}

// --- The tests ---------------------------------------------------------------------------------

#[test]
fn every_example_of_the_reference_parses_with_the_services_parsers() {
    let (_, examples, parsed) = reference_examples();
    for kind in [
        FileKind::Definition,
        FileKind::Checks,
        FileKind::Exports,
        FileKind::Extract,
        FileKind::Model,
        FileKind::Migration,
    ] {
        assert!(
            of(&examples, kind).next().is_some(),
            "{DOC} has no example of {kind:?}"
        );
    }
    let dataset = parsed.dataset.expect("the example dataset");
    assert!(!parsed.checks.is_empty() && !parsed.exports.is_empty() && !parsed.extract.is_empty());
    assert!(
        parsed
            .models
            .iter()
            .any(|model| !model.depends_on.is_empty()),
        "no model example shows `-- depends_on:`"
    );
    // The reports exported are reports the example dataset publishes.
    for export in &parsed.exports {
        assert!(
            dataset.reports.contains(&export.report),
            "export '{}' is not a report of dataset.toml",
            export.report
        );
    }
}

#[test]
fn the_reference_shows_every_key_check_kind_and_column_type() {
    let (markdown, examples, parsed) = reference_examples();
    let known = known();

    // The check kinds the catalog knows, each shown by an example, and no other.
    let shown: BTreeSet<&str> = parsed
        .checks
        .iter()
        .map(|check| check.kind.name())
        .collect();
    let kinds: BTreeSet<&str> = known.kinds.keys().map(String::as_str).collect();
    assert_eq!(
        shown, kinds,
        "the check kinds of the examples and of the catalog"
    );

    // Each older name is one: accepted alone, refused beside the current name.
    for (older, current) in ALIASES {
        let with = |keys: &str| {
            Datasets::parse(&format!(
                "name = \"probe\"\n{keys}\n[[sources]]\nname = \"probe\"\ncolumns = []\n"
            ))
        };
        with(&format!("{older} = 0.5")).unwrap_or_else(|error| panic!("{older}: {error:#}"));
        let both = with(&format!("{older} = 0.5\n{current} = 0.5")).expect_err("both names");
        assert!(
            format!("{both:#}").contains("duplicate field"),
            "{older} is no alias of {current}: {both:#}"
        );
    }

    // Every key is used by an example.
    let mut used = Used::default();
    for example in &examples {
        match example.kind {
            FileKind::Definition => used.definition(&example.body),
            FileKind::Checks => used.checks(&example.body),
            FileKind::Exports => used.entries_of("exports file", "export", &example.body),
            FileKind::Extract => used.entries_of("extract file", "extract", &example.body),
            FileKind::Model | FileKind::Migration => {}
        }
    }
    let mut problems = unused(&known, &used, DOC);

    // And named in its section.
    let mut named = |heading: &str, keys: &[String]| {
        problems.extend(unnamed(section(&markdown, heading), heading, keys));
    };
    named("### `dataset.toml`", &known.definition);
    named("#### `[[sources]]`", &known.source);
    named("#### Columns and types", &known.column);
    named("#### Columns and types", &known.types);
    named("### `checks.toml`", &known.checks_file);
    named("### `checks.toml`", &known.check);
    for (kind, keys) in &known.kinds {
        named(&format!("#### `{kind}`"), keys);
    }
    named("### `exports.toml`", &known.exports_file);
    named("### `exports.toml`", &known.export);
    named("### `extract.toml`", &known.extract_file);
    named("### `extract.toml`", &known.extract);
    let models = section(&markdown, "### Models: `models/*.sql`");
    for line in ["`-- model: <name>`", "`-- depends_on: "] {
        if !models.contains(line) {
            problems.push(format!("{DOC}: the models section does not show {line}"));
        }
    }
    section(&markdown, "### Migrations: `migrations/*.sql`");
    section(&markdown, "### What a model or a check may read");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The every_key dataset's files, parsed as the services parse them.
struct EveryKey {
    dataset: Dataset,
    checks: Vec<Check>,
    extract: Vec<SourceExtract>,
    models: ModelSet,
    texts: BTreeMap<&'static str, String>,
}

fn every_key() -> EveryKey {
    let dir = repo().join(EVERY_KEY);
    let texts: BTreeMap<&'static str, String> = [
        "dataset.toml",
        "checks.toml",
        "exports.toml",
        "extract.toml",
    ]
    .into_iter()
    .map(|file| (file, read(&format!("{EVERY_KEY}/{file}"))))
    .collect();
    let dataset = Datasets::parse(&texts["dataset.toml"]).expect("every_key/dataset.toml");
    let checks = catalog::checks::parse(&texts["checks.toml"]).expect("every_key/checks.toml");
    catalog::exports::parse(&texts["exports.toml"]).expect("every_key/exports.toml");
    let extract =
        catalog::extract::parse(&texts["extract.toml"], &dataset).expect("every_key/extract.toml");
    let models = ModelSet::load(&dir.join("models")).expect("every_key/models");
    EveryKey {
        dataset,
        checks,
        extract,
        models,
        texts,
    }
}

#[test]
fn the_every_key_dataset_uses_every_key_check_kind_and_column_type() {
    let every = every_key();
    let known = known();
    let mut used = Used::default();
    used.definition(&every.texts["dataset.toml"]);
    used.checks(&every.texts["checks.toml"]);
    used.entries_of("exports file", "export", &every.texts["exports.toml"]);
    used.entries_of("extract file", "extract", &every.texts["extract.toml"]);
    let mut problems = unused(&known, &used, EVERY_KEY);

    let types: HashSet<_> = every
        .dataset
        .sources
        .iter()
        .flat_map(|source| &source.columns)
        .map(|column| discriminant(&column.column_type))
        .collect();
    for listed in &known.types {
        if !types.contains(&type_of(listed)) {
            problems.push(format!("{EVERY_KEY}: no column of type {listed}"));
        }
    }
    let kinds: BTreeSet<&str> = every.checks.iter().map(|check| check.kind.name()).collect();
    for kind in known.kinds.keys() {
        if !kinds.contains(kind.as_str()) {
            problems.push(format!("{EVERY_KEY}: no check of kind {kind}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every choice a key offers, too.
    let severities: BTreeSet<&str> = every
        .checks
        .iter()
        .map(|check| check.severity.as_str())
        .collect();
    assert_eq!(
        severities,
        BTreeSet::from([Severity::Error.as_str(), Severity::Warn.as_str()])
    );
    let modes: BTreeSet<&str> = every
        .dataset
        .sources
        .iter()
        .map(|source| source.mode().as_str())
        .collect();
    assert_eq!(
        modes,
        BTreeSet::from([Mode::Snapshot.as_str(), Mode::Delta.as_str()])
    );
    assert!(
        every.dataset.sources.iter().any(|source| source.counted()),
        "a counted source"
    );
    assert!(
        every.dataset.sources.iter().any(|source| !source.required),
        "an optional source"
    );
    assert!(
        every
            .extract
            .iter()
            .any(|source| matches!(source.origin, Origin::Table { .. }))
    );
    assert!(
        every
            .extract
            .iter()
            .any(|source| matches!(source.origin, Origin::Query(_)))
    );
    assert!(
        every
            .extract
            .iter()
            .any(|source| source.mode == ExtractMode::Snapshot)
    );
    assert!(
        every
            .extract
            .iter()
            .any(|source| matches!(source.mode, ExtractMode::Incremental { .. }))
    );
    assert!(
        every
            .models
            .models()
            .iter()
            .any(|model| model.depends_on.len() > 1),
        "a model with more than one dependency"
    );
    for source in &every.dataset.sources {
        assert!(
            source.table_name().starts_with("every_key_"),
            "staging table {} lacks the every_key_ prefix that keeps it apart from other datasets'",
            source.table_name()
        );
    }
}

/// Runs `landfall dataset check DIR` against the bundled datasets; panics with its output
/// unless it passes with no problems, having read every file.
async fn assert_check_passes(env: &TestEnv, dir: &Path) {
    let output = env
        .landfall(&["dataset", "check", dir.to_str().expect("a UTF-8 path")])
        .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("no problems"),
        "landfall dataset check {}:\n{stdout}\n{stderr}",
        dir.display()
    );
    for stage in [
        "dataset ", "models ", "checks ", "exports ", "extract ", "SQL ",
    ] {
        assert!(
            stdout.lines().any(|line| line.starts_with(stage)),
            "no '{stage}' line: {}:\n{stdout}",
            dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_examples_and_the_every_key_dataset_pass_landfall_dataset_check() {
    let (_, examples, parsed) = reference_examples();
    let env = TestEnv::new().await;

    // The examples as a dataset folder.
    let work = std::env::temp_dir().join(format!("landfall-datasets-doc-{}", env.suffix));
    let dataset = parsed.dataset.expect("the example dataset");
    let folder = work.join(&dataset.name);
    let definition = of(&examples, FileKind::Definition)
        .next()
        .expect("a definition");
    let mut files = vec![("dataset.toml".to_owned(), definition.body.clone())];
    for (kind, file) in [
        (FileKind::Checks, "checks.toml"),
        (FileKind::Exports, "exports.toml"),
        (FileKind::Extract, "extract.toml"),
    ] {
        files.push((file.to_owned(), joined(&examples, kind)));
    }
    for example in of(&examples, FileKind::Model).chain(of(&examples, FileKind::Migration)) {
        files.push((example.file.clone(), example.body.clone()));
    }
    for (file, text) in files {
        let path = folder.join(file);
        std::fs::create_dir_all(path.parent().expect("a folder")).unwrap();
        std::fs::write(&path, text).unwrap();
    }

    assert_check_passes(&env, &folder).await;
    assert_check_passes(&env, &repo().join(EVERY_KEY)).await;

    let _ = std::fs::remove_dir_all(&work);
    env.cleanup().await;
}
