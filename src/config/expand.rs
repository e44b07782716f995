//! The anatomy shared by `--source` and `--sink` values: `kind:URL?options`.
//!
//! [`split`] cuts the value at the first `:`; the rest is `$VAR`/`${VAR}`-expanded with the
//! injected environment lookup ([`expand`]), then cut into an optional URL and its options
//! ([`Options`]). Error messages never contain an environment variable's value or a secret
//! option's value.

use std::collections::HashSet;
use std::str::FromStr;

use url::Url;

/// Placeholder printed instead of a secret.
pub const REDACTED: &str = "**REDACTED**";

/// Option names whose values are never printed.
const SECRET_OPTIONS: &[&str] = &["pw", "password", "token"];

/// Expands `$VAR` and `${VAR}` using `env`; `$$` is a literal `$`. A `$` followed by anything
/// else is kept as is. Every unset variable is reported by name, never by value.
pub fn expand(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (mut out, mut errors) = (String::with_capacity(input.len()), Vec::new());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => {
                    errors.push("unterminated \"${\" (expected ${NAME})".to_string());
                    return Err(errors);
                }
            }
        } else if let Some(next) = after.strip_prefix('$') {
            out.push('$');
            rest = next;
            continue;
        } else {
            let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..len], &after[len..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => errors.push(format!("environment variable ${name} is not set")),
        }
        rest = next;
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Splits `kind:rest` at the first `:`; a value without `:` is all kind.
pub fn split(value: &str) -> (&str, &str) {
    value.split_once(':').unwrap_or((value, ""))
}

/// The part after `kind:`, expanded and cut into a base URL (query removed) and options.
pub struct Target {
    /// `None` when the value was empty (`kubernetes:`, `''`) or only a query (`?a=b`).
    pub url: Option<Url>,
    pub options: Options,
}

impl Target {
    /// Expands and parses `rest`. Problems are returned as messages for the caller's flag.
    pub fn parse(rest: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Vec<String>> {
        let trimmed = rest.trim();
        let rest = if trimmed == "''" || trimmed == "\"\"" {
            ""
        } else {
            rest
        };
        let from_env = rest.contains('$');
        let expanded = expand(rest, env)?;
        let (base, query) = expanded.split_once('?').unwrap_or((&expanded, ""));
        let url = match base {
            "" => None,
            base => {
                // Only the error kind is printed: the URL may hold credentials or expanded values.
                let mut url = Url::parse(base).map_err(|e| {
                    vec![format!(
                        "not a valid URL ({e}); expected e.g. https://host:port"
                    )]
                })?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(vec![
                        "credentials in the URL are not accepted (they would end up in logs); \
                         use the options instead"
                            .to_string(),
                    ]);
                }
                url.set_fragment(None);
                Some(url)
            }
        };
        let mut options = Options::new(query, from_env);
        if from_env {
            // Only option names typed literally are ever printed: the others came out of a
            // variable (e.g. a password holding `&`).
            let raw_query = rest.split_once('?').map_or("", |(_, q)| q);
            let literal: HashSet<String> = url::form_urlencoded::parse(raw_query.as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect();
            let from_variables: Vec<String> = (options.pairs.iter().map(|(k, _)| k))
                .chain(&options.duplicates)
                .filter(|k| !literal.contains(*k))
                .cloned()
                .collect();
            options.hidden.extend(from_variables);
        }
        Ok(Target { url, options })
    }
}

/// The `?a=b&c=d` options of one flag value. Each `take_*` call consumes an option; [`finish`]
/// reports the ones never taken and returns every problem found.
///
/// [`finish`]: Options::finish
pub struct Options {
    pairs: Vec<(String, String)>,
    taken: HashSet<String>,
    /// Whether the value went through `$VAR` expansion: then no value is ever echoed.
    from_env: bool,
    /// Option names never printed: those that came out of a variable, and a value-less name
    /// right after a secret option (`pw=ab&cd` is most likely a password holding `&`).
    hidden: HashSet<String>,
    errors: Vec<String>,
    /// Names given more than once, reported by [`Options::finish`].
    duplicates: Vec<String>,
    /// The values after the first of names given more than once (see [`Options::take_all`]).
    repeats: Vec<(String, String)>,
}

impl Options {
    /// Decodes a query string. An option given twice is an error (which one was meant?).
    pub fn new(query: &str, from_env: bool) -> Options {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut duplicates: Vec<String> = Vec::new();
        let mut repeats = Vec::new();
        let mut hidden = HashSet::new();
        let mut after_secret = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if after_secret && value.is_empty() {
                hidden.insert(key.to_string());
            }
            after_secret = SECRET_OPTIONS.contains(&&*key);
            if pairs.iter().any(|(k, _)| *k == key) {
                if !duplicates.iter().any(|d| *d == key) {
                    duplicates.push(key.to_string());
                }
                repeats.push((key.into_owned(), value.into_owned()));
                continue;
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Options {
            pairs,
            taken: HashSet::new(),
            from_env,
            hidden,
            errors: Vec::new(),
            duplicates,
            repeats,
        }
    }

    /// An option name as printed in messages.
    fn show_key(&self, key: &str) -> String {
        if self.hidden.contains(key) {
            "(name not shown: it may hold a secret; write `&` in a value as %26)".to_string()
        } else {
            format!("{key:?}")
        }
    }

    /// Every value of a repeatable option, in order (`brokers=a&brokers=b`); repeating it is
    /// then no error.
    pub fn take_all(&mut self, name: &str) -> Vec<String> {
        self.taken.insert(name.to_string());
        self.duplicates.retain(|d| d != name);
        let mut all: Vec<String> = (self.pairs.iter())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect();
        all.extend(
            (self.repeats.iter())
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        );
        all
    }

    /// Whether an error about `name` was recorded.
    pub fn has_error(&self, name: &str) -> bool {
        let prefix = format!("option {name}:");
        self.errors.iter().any(|e| e.starts_with(&prefix))
    }

    /// The raw value of `name`, if given.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.taken.insert(name.to_string());
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// How a value of option `name` (or a part of the URL) may appear in a message: secrets and
    /// expanded values never do.
    pub fn show(&self, name: &str, value: &str) -> String {
        if SECRET_OPTIONS.contains(&name) {
            REDACTED.to_string()
        } else if self.from_env {
            "(value from the environment, not shown)".to_string()
        } else {
            format!("{value:?}")
        }
    }

    /// Records a problem with option `name`.
    pub fn error(&mut self, name: &str, message: impl std::fmt::Display) {
        self.errors.push(format!("option {name}: {message}"));
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    pub fn take_bool(&mut self, name: &str) -> Option<bool> {
        let value = self.take(name)?;
        match value.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => {
                let shown = self.show(name, &value);
                self.error(name, format!("{shown} is not a boolean (true or false)"));
                None
            }
        }
    }

    /// A number in `range` (inclusive), or `default` when absent or invalid.
    pub fn take_num<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(value) = self.take(name) else {
            return default;
        };
        match value.parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                let shown = self.show(name, &value);
                self.error(name, format!("{shown} is not a number from {min} to {max}"));
                default
            }
        }
    }

    /// A size in bytes: a whole number with an optional unit (`k`, `M`, `G` in powers of
    /// 1,000; `Ki`, `Mi`, `Gi` in powers of 1,024; `B` after any of them is allowed).
    pub fn take_bytes(&mut self, name: &str, default: u64, min: u64) -> u64 {
        let Some(value) = self.take(name) else {
            return default;
        };
        match parse_bytes(&value) {
            Some(n) if n >= min => n,
            _ => {
                let shown = self.show(name, &value);
                self.error(
                    name,
                    format!("{shown} is not a size of at least {min} bytes (e.g. 512Mi, 2Gi)"),
                );
                default
            }
        }
    }

    /// A Go duration (`90s`, `1h`, `0`).
    pub fn take_duration(&mut self, name: &str) -> Option<std::time::Duration> {
        let value = self.take(name)?;
        match super::duration::parse(&value) {
            Ok(d) => Some(d),
            Err(_) if self.from_env || SECRET_OPTIONS.contains(&name) => {
                let shown = self.show(name, &value);
                self.error(name, format!("{shown} is not a duration (e.g. 30s, 1h)"));
                None
            }
            Err(e) => {
                self.error(name, e);
                None
            }
        }
    }

    /// A string, or `default` when absent; when `non_empty`, an empty value is an error.
    pub fn take_string(&mut self, name: &str, default: &str, non_empty: bool) -> String {
        match self.take(name) {
            Some(v) if non_empty && v.is_empty() => {
                self.error(name, "must not be empty");
                default.to_string()
            }
            Some(v) => v,
            None => default.to_string(),
        }
    }

    /// Reports options never taken (naming `known`) and returns every problem found.
    pub fn finish(self, known: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = self
            .duplicates
            .iter()
            .map(|key| format!("option {} given more than once", self.show_key(key)))
            .collect();
        out.extend(self.errors.iter().cloned());
        for (key, _) in &self.pairs {
            if !self.taken.contains(key) {
                out.push(format!(
                    "unknown option {} (known: {})",
                    self.show_key(key),
                    known.join(", ")
                ));
            }
        }
        out
    }
}

/// `512Mi`, `2G`, `1000000` as bytes.
pub fn parse_bytes(value: &str) -> Option<u64> {
    let v = value.trim();
    let v = v.strip_suffix('B').unwrap_or(v);
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(digits);
    let scale: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.parse::<u64>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("influx".into()),
            "PW" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("plain", "plain"),
            ("http://$HOST:8086", "http://influx:8086"),
            ("http://${HOST}x", "http://influxx"),
            ("a${EMPTY}b", "ab"),
            ("cost$$5", "cost$5"),
            ("trailing$", "trailing$"),
            ("$-x", "$-x"),
            ("pw=$PW&x", "pw=s3cret&x"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn unset_variables_are_all_named() {
        let errors = expand("$NOPE and ${ALSO_NOPE} and $PW", &env).expect_err("unset");
        assert_eq!(
            errors,
            vec![
                "environment variable $NOPE is not set",
                "environment variable $ALSO_NOPE is not set"
            ]
        );
        let errors = expand("${HOST", &env).expect_err("unterminated");
        assert!(errors[0].contains("unterminated"));
    }

    #[test]
    fn options_report_duplicates_unknown_and_bad_values() {
        let mut o = Options::new("a=1&a=2&b=maybe&pw=hunter2x&zz=1", false);
        assert_eq!(o.take_bool("b"), None);
        assert_eq!(o.take_num::<u16>("pw", 7, 0, 10), 7);
        let _ = o.take("a");
        let errors = o.finish(&["a", "b", "pw"]);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].contains("\"a\" given more than once"));
        assert!(errors[1].contains("option b: \"maybe\" is not a boolean"));
        assert!(errors[2].contains("option pw: **REDACTED** is not a number"));
        assert!(errors[3].contains("unknown option \"zz\" (known: a, b, pw)"));
        assert!(!errors.concat().contains("hunter2x"));
    }

    #[test]
    fn option_names_that_may_hold_secrets_are_not_shown() {
        // A password holding `&`, typed or from the environment.
        let env = |name: &str| (name == "PW").then(|| "ab&zz_tail=1&zz_tail=2".to_string());
        for rest in ["?pw=ab&zz_tail&x=1", "?pw=$PW&x=1"] {
            let mut o = Target::parse(rest, &env).expect("parses").options;
            let _ = o.take("pw");
            let errors = o.finish(&["pw"]).concat();
            assert!(!errors.contains("zz_tail"), "{rest}: {errors}");
            assert!(errors.contains("unknown option \"x\""), "{rest}: {errors}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("1000", Some(1000)),
            ("64Ki", Some(64 << 10)),
            ("512MiB", Some(512 << 20)),
            ("2Gi", Some(2 << 30)),
            ("3G", Some(3_000_000_000)),
            ("5k", Some(5_000)),
            ("1.5Gi", None),
            ("Gi", None),
            ("-1", None),
            ("99999999999Gi", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), want, "{text}");
        }
    }

    #[test]
    fn go_booleans() {
        for (text, want) in [
            ("1", true),
            ("t", true),
            ("True", true),
            ("0", false),
            ("F", false),
        ] {
            let mut o = Options::new(&format!("x={text}"), false);
            assert_eq!(o.take_bool("x"), Some(want));
            assert!(o.finish(&["x"]).is_empty());
        }
    }

    #[test]
    fn expanded_values_are_never_shown() {
        let target = Target::parse("?x=$PW", &env).expect("parses");
        let mut o = target.options;
        assert_eq!(o.take_bool("x"), None);
        let errors = o.finish(&["x"]).concat();
        assert!(
            !errors.contains("s3cret") && errors.contains("not shown"),
            "{errors}"
        );
    }

    #[test]
    fn targets() {
        let t = Target::parse("''", &env).expect("empty");
        assert!(t.url.is_none());
        let t = Target::parse("https://$HOST:1?a=b#frag", &env).expect("url");
        assert_eq!(
            t.url.map(String::from).as_deref(),
            Some("https://influx:1/")
        );
        let err = Target::parse("http://u:$PW@h", &env)
            .err()
            .expect("creds")
            .concat();
        assert!(
            err.contains("credentials") && !err.contains("s3cret"),
            "{err}"
        );
        let err = Target::parse("no scheme", &env)
            .err()
            .expect("bad url")
            .concat();
        assert!(err.contains("not a valid URL"), "{err}");
    }
}
