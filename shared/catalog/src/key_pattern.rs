//! The key-pattern language: where a source's files land under the landing prefix and where in
//! the key the batch's date is (`{dataset}/{yyyy}/{mm}/{dd}/Orders-{yyyy}{mm}{dd}`), compiled
//! once, then read against keys, rendered for a date, and compared with other patterns.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{Datelike as _, NaiveDate};

/// The layout every source has unless its definition gives a `key_pattern`.
pub const DEFAULT_KEY_PATTERN: &str = "{dataset}/ingestion_date={date}/{source}";

/// The placeholders a key pattern may hold.
const PLACEHOLDERS: &str = "{dataset}, {source}, {date}, {yyyy}, {mm}, {dd}";

/// One piece of a compiled key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`: any characters but `/`, none included.
    Star,
    /// `{date}`: a `YYYY-MM-DD` date (read as chrono's `%Y-%m-%d`).
    Date,
    /// `{yyyy}`: four digits.
    Year,
    /// `{mm}`: two digits.
    Month,
    /// `{dd}`: two digits.
    Day,
}

/// A source's key pattern, compiled: the key after the landing prefix, without its `.csv` or
/// `.csv.gz` suffix, with `{dataset}` and `{source}` replaced by the names, the date
/// placeholders left to read the batch's date from, and `*` matching within a path segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPattern {
    /// As written (or the default).
    pub(crate) written: String,
    /// With `{dataset}` filled in, for messages (`{source}` kept: one line for many sources).
    pub(crate) shown: String,
    /// With `{dataset}` and `{source}` filled in.
    pub(crate) resolved: String,
    tokens: Vec<Token>,
}

/// What a key pattern read from a key: every date it can be read as, and the date-shaped text
/// where it would match but the date does not exist.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    pub(crate) dates: BTreeSet<NaiveDate>,
    pub(crate) bad_dates: BTreeSet<String>,
}

/// The date parts read so far along one way of matching.
#[derive(Debug, Clone, Copy, Default)]
struct Parts<'a> {
    date: Option<NaiveDate>,
    bad_date: Option<&'a str>,
    year: Option<u32>,
    month: Option<u32>,
    day: Option<u32>,
}

impl KeyPattern {
    /// Compiles `written` for one source; the error says what is wrong in words.
    pub fn compile(written: &str, dataset: &str, source: &str) -> Result<KeyPattern, String> {
        let fail = |what: &str| Err(format!("key_pattern '{written}' {what}"));
        if written.is_empty() {
            return fail("is empty");
        }
        if written.starts_with('/') || written.ends_with('/') || written.contains("//") {
            return fail(
                "must be a path under the landing prefix: no / at its start or end, no //",
            );
        }
        if written.ends_with(".csv") || written.ends_with(".csv.gz") {
            return fail(
                "ends in .csv: leave the suffix out (a key matches with .csv or .csv.gz after the pattern)",
            );
        }
        let mut compiled = KeyPattern {
            written: written.to_owned(),
            ..KeyPattern::default()
        };
        compiled
            .tokenize(dataset, source)
            .map_err(|what| format!("key_pattern '{written}' {what}"))?;
        let has = |token: Token| compiled.tokens.contains(&token);
        let whole_date =
            has(Token::Date) || (has(Token::Year) && has(Token::Month) && has(Token::Day));
        if !whole_date {
            return fail(
                "has no date: it needs {date} (YYYY-MM-DD) or all of {yyyy}, {mm} and {dd}",
            );
        }
        Ok(compiled)
    }

    /// Reads `written` into tokens, `shown` and `resolved`, the names filled in; the error says
    /// what is wrong with it.
    fn tokenize(&mut self, dataset: &str, source: &str) -> Result<(), String> {
        let written = self.written.clone();
        let mut literal = String::new();
        let mut chars = written.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c != '{' => name.push(c),
                            _ => return Err("has a { without its }".into()),
                        }
                    }
                    self.placeholder(&name, dataset, source, &mut literal)?;
                }
                '}' => return Err("has a } without its {".into()),
                '*' => {
                    if literal.is_empty() && self.tokens.last() == Some(&Token::Star) {
                        return Err(
                            "has **: a * already matches any characters within a path segment"
                                .into(),
                        );
                    }
                    self.push(Token::Star, "*", &mut literal);
                }
                c if c.is_control() => return Err("holds a control character".into()),
                c => {
                    literal.push(c);
                    self.shown.push(c);
                    self.resolved.push(c);
                }
            }
        }
        if !literal.is_empty() {
            self.tokens.push(Token::Literal(literal));
        }
        Ok(())
    }

    /// One `{name}`: the dataset's or the source's name filled in, or a date part to read.
    fn placeholder(
        &mut self,
        name: &str,
        dataset: &str,
        source: &str,
        literal: &mut String,
    ) -> Result<(), String> {
        let token = match name {
            "dataset" => {
                literal.push_str(dataset);
                self.shown.push_str(dataset);
                self.resolved.push_str(dataset);
                return Ok(());
            }
            "source" => {
                literal.push_str(source);
                self.shown.push_str("{source}");
                self.resolved.push_str(source);
                return Ok(());
            }
            "date" => Token::Date,
            "yyyy" => Token::Year,
            "mm" => Token::Month,
            "dd" => Token::Day,
            other => {
                return Err(format!(
                    "has an unknown placeholder {{{other}}} (known: {PLACEHOLDERS})"
                ));
            }
        };
        self.push(token, &format!("{{{name}}}"), literal);
        Ok(())
    }

    /// Ends the literal text before `token` and appends it, written as `text`.
    fn push(&mut self, token: Token, text: &str, literal: &mut String) {
        if !literal.is_empty() {
            self.tokens.push(Token::Literal(std::mem::take(literal)));
        }
        self.tokens.push(token);
        self.shown.push_str(text);
        self.resolved.push_str(text);
    }

    /// The pattern as written in the definition (or the default).
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The pattern with the dataset and source names filled in.
    pub fn resolved(&self) -> &str {
        &self.resolved
    }

    /// Whether this is the default layout.
    pub fn is_default(&self) -> bool {
        self.written == DEFAULT_KEY_PATTERN
    }

    /// The key (after the landing prefix, without suffix) of the batch dated `date`, as far as
    /// it is known: up to the first `*`. `true` when there is none, so the key is complete.
    pub fn render(&self, date: NaiveDate) -> (String, bool) {
        let mut key = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => key.push_str(text),
                Token::Star => return (key, false),
                Token::Date => key.push_str(&date.format("%Y-%m-%d").to_string()),
                Token::Year => key.push_str(&date.format("%Y").to_string()),
                Token::Month => key.push_str(&date.format("%m").to_string()),
                Token::Day => key.push_str(&date.format("%d").to_string()),
            }
        }
        (key, true)
    }

    /// Every way `stem` (a key after the landing prefix, without its suffix) matches.
    pub(crate) fn read(&self, stem: &str) -> Reading {
        let mut reading = Reading::default();
        self.walk(0, stem, Parts::default(), &mut reading);
        reading
    }

    fn walk<'a>(&self, index: usize, rest: &'a str, parts: Parts<'a>, reading: &mut Reading) {
        let Some(token) = self.tokens.get(index) else {
            if rest.is_empty() {
                finish(parts, reading);
            }
            return;
        };
        let segment = &rest[..rest.find('/').unwrap_or(rest.len())];
        match token {
            Token::Literal(text) => {
                if let Some(after) = rest.strip_prefix(text.as_str()) {
                    self.walk(index + 1, after, parts, reading);
                }
            }
            Token::Star => {
                for end in (0..=segment.len()).filter(|&end| segment.is_char_boundary(end)) {
                    self.walk(index + 1, &rest[end..], parts, reading);
                }
            }
            Token::Date => {
                for end in (1..=segment.len()).filter(|&end| segment.is_char_boundary(end)) {
                    let text = &segment[..end];
                    let mut next = parts;
                    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                        Ok(date) if parts.date.is_none_or(|seen| seen == date) => {
                            next.date = Some(date)
                        }
                        Ok(_) => continue,
                        // Digits in three dash-separated groups that are no date (2026-02-30):
                        // worth naming if the rest matches.
                        Err(_) if looks_like_a_date(text) => next.bad_date = Some(text),
                        Err(_) => continue,
                    }
                    self.walk(index + 1, &rest[end..], next, reading);
                }
            }
            Token::Year | Token::Month | Token::Day => {
                let width = if *token == Token::Year { 4 } else { 2 };
                let Some(digits) = segment.get(..width) else {
                    return;
                };
                if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                    return;
                }
                let value: u32 = digits.parse().expect("ASCII digits");
                let mut next = parts;
                let slot = match token {
                    Token::Year => &mut next.year,
                    Token::Month => &mut next.month,
                    _ => &mut next.day,
                };
                // A part read twice (a folder and a file name) must read the same.
                if slot.is_some_and(|seen| seen != value) {
                    return;
                }
                *slot = Some(value);
                self.walk(index + 1, &rest[width..], next, reading);
            }
        }
    }

    /// A key both patterns match (without suffix), if there is one: a search over pairs of
    /// positions in the two patterns, `{date}` taken as `dddd-dd-dd` and each date part as its
    /// digits. Any digit may stand where a date part is, so an overlap that only a date which
    /// does not exist could make is still reported.
    pub fn overlap(&self, other: &KeyPattern) -> Option<String> {
        let (a, b) = (self.classes(), other.classes());
        let start = (0usize, 0usize);
        // Each state reached: the state before it and the character that led here (none for
        // skipping a `*`).
        let mut came_from: HashMap<State, (State, Option<char>)> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = HashSet::from([start]);
        while let Some((i, j)) = queue.pop_front() {
            if i == a.len() && j == b.len() {
                let mut example = Vec::new();
                let mut at = (i, j);
                while at != start {
                    let (previous, c) = came_from[&at];
                    example.extend(c);
                    at = previous;
                }
                return Some(example.into_iter().rev().collect());
            }
            let mut next = Vec::new();
            if a.get(i) == Some(&Class::Star) {
                next.push(((i + 1, j), None));
            }
            if b.get(j) == Some(&Class::Star) {
                next.push(((i, j + 1), None));
            }
            if let (Some(x), Some(y)) = (a.get(i), b.get(j))
                && let Some(c) = x.common(*y)
            {
                let i2 = if *x == Class::Star { i } else { i + 1 };
                let j2 = if *y == Class::Star { j } else { j + 1 };
                next.push(((i2, j2), Some(c)));
            }
            for (state, c) in next {
                if seen.insert(state) {
                    came_from.insert(state, ((i, j), c));
                    queue.push_back(state);
                }
            }
        }
        None
    }

    /// The pattern as one character class per character, `*` as a class of its own.
    fn classes(&self) -> Vec<Class> {
        let mut classes = Vec::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => classes.extend(text.chars().map(Class::Char)),
                Token::Star => classes.push(Class::Star),
                Token::Year => classes.extend([Class::Digit; 4]),
                Token::Month | Token::Day => classes.extend([Class::Digit; 2]),
                Token::Date => {
                    classes.extend([Class::Digit; 4]);
                    classes.push(Class::Char('-'));
                    classes.extend([Class::Digit; 2]);
                    classes.push(Class::Char('-'));
                    classes.extend([Class::Digit; 2]);
                }
            }
        }
        classes
    }
}

/// A position in each of two patterns, for [`KeyPattern::overlap`].
type State = (usize, usize);

/// One character of a key pattern, for [`KeyPattern::overlap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Char(char),
    Digit,
    /// Any run of characters but `/`.
    Star,
}

impl Class {
    /// A character both classes accept.
    fn common(self, other: Class) -> Option<char> {
        match (self, other) {
            (Class::Char(x), Class::Char(y)) => (x == y).then_some(x),
            (Class::Char(c), Class::Digit) | (Class::Digit, Class::Char(c)) => {
                c.is_ascii_digit().then_some(c)
            }
            (Class::Char(c), Class::Star) | (Class::Star, Class::Char(c)) => {
                (c != '/').then_some(c)
            }
            (Class::Digit, Class::Digit | Class::Star) | (Class::Star, Class::Digit) => Some('1'),
            (Class::Star, Class::Star) => Some('x'),
        }
    }
}

/// Digits in three groups separated by `-`.
fn looks_like_a_date(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|group| !group.is_empty() && group.bytes().all(|byte| byte.is_ascii_digit()))
}

/// The end of one way of matching: the date it reads, if the parts make one.
fn finish(parts: Parts<'_>, reading: &mut Reading) {
    if let Some(text) = parts.bad_date {
        reading.bad_dates.insert(text.to_owned());
        return;
    }
    match (parts.date, parts.year, parts.month, parts.day) {
        // `{date}` and any parts beside it must agree.
        (Some(date), year, month, day) => {
            let agrees = year.is_none_or(|year| date.year() == year as i32)
                && month.is_none_or(|month| date.month() == month)
                && day.is_none_or(|day| date.day() == day);
            if agrees {
                reading.dates.insert(date);
            }
        }
        (None, Some(year), Some(month), Some(day)) => {
            match NaiveDate::from_ymd_opt(year as i32, month, day) {
                Some(date) => {
                    reading.dates.insert(date);
                }
                None => {
                    reading
                        .bad_dates
                        .insert(format!("{year:04}-{month:02}-{day:02}"));
                }
            }
        }
        // Not reached: a pattern without a whole date is refused.
        (None, ..) => {}
    }
}
