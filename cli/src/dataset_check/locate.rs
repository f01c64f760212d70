//! Where a problem is: the line of a TOML error, of a `(line N)` in a message, of a quoted name,
//! or of PostgreSQL's error position in a model's SQL; and a database error in words.

/// The line and message of a parse error: a TOML error's span, a `(line N)` in the message.
pub(super) fn locate(text: &str, error: &anyhow::Error) -> (Option<usize>, String) {
    if let Some(toml_error) = error.downcast_ref::<toml::de::Error>() {
        let line = toml_error.span().map(|span| line_of(text, span.start));
        return (line, toml_error.message().trim().to_owned());
    }
    let message = format!("{error:#}");
    let line = message.find("(line ").and_then(|start| {
        message[start + 6..]
            .split(')')
            .next()
            .and_then(|n| n.parse().ok())
    });
    (line, message)
}

/// The 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The first line holding `needle`, outside comments.
pub(super) fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let code = line.split('#').next().unwrap_or("");
            code.contains(needle)
        })
        .map(|index| index + 1)
}

/// A validation message names what is wrong in quotes ('id'); the line that writes it as a TOML
/// string ("id") is where to look. The last name is the most specific.
pub(super) fn line_of_quoted_name(text: &str, message: &str) -> Option<usize> {
    let names: Vec<&str> = message.split('\'').skip(1).step_by(2).collect();
    names
        .iter()
        .rev()
        .find_map(|name| find_line(text, &format!("\"{name}\"")))
}

/// The 1-based line of PostgreSQL's error position (a 1-based character index into the SQL).
pub(super) fn line_of_position(sql: &str, error: &tokio_postgres::Error) -> Option<usize> {
    let position = match error.as_db_error()?.position()? {
        tokio_postgres::error::ErrorPosition::Original(position) => *position as usize,
        tokio_postgres::error::ErrorPosition::Internal { .. } => return None,
    };
    let offset = sql
        .char_indices()
        .nth(position.saturating_sub(1))
        .map_or(sql.len(), |(offset, _)| offset);
    Some(line_of(sql, offset))
}

pub(super) fn db_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            message
        }
        None => error.to_string(),
    }
}
