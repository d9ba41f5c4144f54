//! Boot arguments: whitespace-separated `key=value` words (a word without `=`
//! is a key with an empty value), as QEMU passes them in the fw_cfg file
//! `opt/sion/cmdline`. Source: QEMU `docs/specs/fw_cfg.rst`.

/// The value of `key` in the command line `text`: the first word `key=value`
/// gives `value`, a bare word `key` gives `""`; `None` when absent.
pub fn get<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    words(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The `(key, value)` pairs of `text` in order; a word without `=` has an
/// empty value, a word with several `=` splits at the first.
pub fn words(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace()
        .map(|w| w.split_once('=').unwrap_or((w, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_bare_words() {
        let text = "  init=t-ipc  quiet a=b=c\tinit=second ";
        assert_eq!(get(text, "init"), Some("t-ipc"));
        assert_eq!(get(text, "quiet"), Some(""));
        assert_eq!(get(text, "a"), Some("b=c"));
        assert_eq!(get(text, "missing"), None);
        assert_eq!(words(text).count(), 4);
    }

    #[test]
    fn empty_line_has_no_words() {
        assert_eq!(words("").count(), 0);
        assert_eq!(get("   ", "init"), None);
        assert_eq!(get("=x", ""), Some("x"));
    }
}
