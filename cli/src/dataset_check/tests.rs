use super::declarations::{entries, tidy_entry_message};
use super::locate::{line_of_quoted_name, locate};
use catalog::Datasets;

#[test]
fn entries_start_at_their_header_line() {
    let text = "# checks\n\n[[checks]]\nname = \"a\"\n\n[[checks]]\nname = \"b\"\n";
    let found = entries(text, "[[checks]]");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].0, 3);
    assert_eq!(found[1], (6, "[[checks]]\nname = \"b\"\n".to_owned()));
}

#[test]
fn messages_of_a_lone_entry_lose_their_position() {
    assert_eq!(
        tidy_entry_message("check 'x' (line 1): kind 'y' is not one of: a"),
        "check 'x': kind 'y' is not one of: a"
    );
    assert_eq!(
        tidy_entry_message("[[exports]] entry 1 (report 'x'): table 'x' must be schema-qualified"),
        "report 'x': table 'x' must be schema-qualified"
    );
}

#[test]
fn a_validation_message_points_to_the_line_naming_it() {
    let text = "name = \"shop\"\n[[sources]]\nname = \"orders\"\nnatural_key = [\"id\"]\n";
    assert_eq!(
        line_of_quoted_name(
            text,
            "source 'orders': natural key column 'id' is not a column"
        ),
        Some(4)
    );
}

#[test]
fn a_key_pattern_problem_points_to_its_line() {
    let definition = "name = \"shop\"\nkey_pattern = \"{dataset}/{date}/{source}\"\n[[sources]]\nname = \"orders\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n[[sources]]\nname = \"refunds\"\nkey_pattern = \"{dataset}/{date}/orders\"\ncolumns = [{ name = \"id\", type = \"int\" }]\n";
    let line = |text: &str| {
        let error = Datasets::parse(text).expect_err("a broken pattern");
        let (line, message) = locate(text, &error);
        (
            line.or_else(|| line_of_quoted_name(text, &message)),
            message,
        )
    };
    // Two sources matching the same keys: the explicit pattern's line.
    let (found, message) = line(definition);
    assert_eq!(found, Some(8), "{message}");
    assert!(message.contains("sources 'orders' and 'refunds' can match the same key"));
    // A pattern without a date, on the dataset: its line.
    let (found, message) =
        line(&definition.replace("{dataset}/{date}/{source}", "{dataset}/{source}"));
    assert_eq!(found, Some(2), "{message}");
    // An unknown placeholder on a source.
    let (found, message) = line(&definition.replace("{date}/orders", "{day}/orders"));
    assert_eq!(found, Some(8), "{message}");
}
