//! Property tests of the policy parser: fed random and mutated documents,
//! [`Policy::from_toml`] never panics, refuses with a typed error that
//! names a key and a problem, and a document it accepts evaluates and
//! writes back to text that parses to the same document.
//!
//! Cases come from a seeded PRNG so a failure reproduces: the seed and the
//! document are in the panic message. The number of cases keeps the test
//! to a second or two in a debug build (it runs with `cargo test`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Policy, PolicyError, Principal, TableName};

/// Cases per generator.
const CASES: usize = 1500;

/// Documents the mutations start from: the crate's example, and one with
/// every kind of rule.
const SEEDS: [&str; 2] = [
    r#"
[groups]
adjusters = ["alice"]
[users.alice.attributes]
region = "CA"

[[grants]]
effect = "allow"
principals = ["group:adjusters"]
tables = ["claims.public.*", "members.public.members"]

[[row_filters]]
principals = ["group:adjusters"]
tables = ["members.public.members"]
filter = "state = current_user_attribute('region')"

[[masks]]
principals = ["*"]
except = ["user:auditor"]
tables = ["members.public.members"]
column = "last_name"
mask = "'***'"
"#,
    r#"
version = 7
admins = ["user:admin", "group:ops"]
[groups]
ops = ["root", "admin"]
[tags]
"members.public.*" = ["pii"]

[[grants]]
effect = "deny"
principals = ["user:mallory"]
tags = ["pii"]

[[grants]]
effect = "allow"
principals = ["*"]
tables = ["*.*.*"]
privilege = "SELECT"
"#,
];

/// Pieces that are meaningful to a TOML parser, inserted by mutations.
const TOKENS: [&str; 24] = [
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ",",
    ".",
    "#",
    "\n",
    "\\",
    "\\u0000",
    "\u{0}",
    "1979-05-27T07:32:00Z",
    "inf",
    "-0x7f",
    "true",
    "é",
    "\u{feff}",
];

/// Keys of a policy document, and some that are not.
const KEYS: [&str; 18] = [
    "version",
    "admins",
    "groups",
    "users",
    "tags",
    "grants",
    "row_filters",
    "masks",
    "effect",
    "principals",
    "tables",
    "privilege",
    "filter",
    "mask",
    "column",
    "except",
    "attributes",
    "unknown",
];

fn check(seed: u64, text: &str) {
    let outcome = std::panic::catch_unwind(|| property(text));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        panic!("seed {seed}: {message}\n--- document ---\n{text}\n---");
    }
}

/// What must hold for any text.
fn property(text: &str) {
    match Policy::from_toml(text) {
        Err(PolicyError::Invalid { key, problem }) => {
            assert!(!key.is_empty(), "an error names no key ({problem})");
            assert!(!problem.trim().is_empty(), "an error at {key} says nothing");
        }
        Ok(policy) => {
            // Evaluation works for anyone on any table.
            for user in ["alice", "admin", "", "mallory"] {
                let principal = policy.principal(user);
                policy.is_admin(&principal);
                for table in [
                    TableName::new("members", "public", "members"),
                    TableName::new("claims", "public", "x"),
                    TableName::new("", "", ""),
                ] {
                    policy.evaluate(&principal, &table);
                }
            }
            policy.evaluate(&Principal::default(), &TableName::new("a", "b", "c"));
            policy.document().rule_summaries();
            // What meshgate writes back (SQL GRANT, the admin API) parses to
            // the same document.
            let written = toml::to_string_pretty(policy.document()).expect("a policy serializes");
            let again = Policy::from_toml(&written)
                .unwrap_or_else(|e| panic!("written policy does not parse: {e}\n{written}"));
            let rewritten = toml::to_string_pretty(again.document()).unwrap();
            assert_eq!(written, rewritten, "writing is not stable");
        }
    }
}

fn random_string(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..12);
    (0..len)
        .map(|_| match rng.random_range(0..10) {
            0 => TOKENS[rng.random_range(0..TOKENS.len())].to_owned(),
            1 => char::from_u32(rng.random_range(0..0x11_0000))
                .unwrap_or('?')
                .to_string(),
            2 => ["*", "user:", "group:", ".", "%", "_"][rng.random_range(0..6)].to_owned(),
            _ => char::from(rng.random_range(b'a'..=b'z')).to_string(),
        })
        .collect()
}

/// A TOML value of any type, nested up to `depth`.
fn random_value(rng: &mut StdRng, depth: usize) -> String {
    match rng.random_range(0..if depth == 0 { 6 } else { 8 }) {
        0 => format!("{:?}", random_string(rng)),
        1 => rng.random::<i64>().to_string(),
        2 => rng.random_bool(0.5).to_string(),
        3 => format!("{}", rng.random::<f32>()),
        4 => "1979-05-27T07:32:00Z".to_owned(),
        5 => format!("'{}'", random_string(rng).replace(['\'', '\n'], "")),
        6 => {
            let n = rng.random_range(0..4);
            let items: Vec<String> = (0..n).map(|_| random_value(rng, depth - 1)).collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            let n = rng.random_range(0..3);
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let key = KEYS[rng.random_range(0..KEYS.len())];
                    format!("{key} = {}", random_value(rng, depth - 1))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A document shaped like a policy: known tables and keys, random values.
fn random_policy(rng: &mut StdRng) -> String {
    let mut text = String::new();
    if rng.random_bool(0.5) {
        text.push_str(&format!("version = {}\n", random_value(rng, 1)));
    }
    if rng.random_bool(0.5) {
        text.push_str(&format!("admins = {}\n", random_value(rng, 2)));
    }
    for _ in 0..rng.random_range(0..5) {
        match rng.random_range(0..6) {
            0 => text.push_str(&format!(
                "[groups]\n{} = {}\n",
                random_string(rng).escape_default(),
                random_value(rng, 2)
            )),
            1 => text.push_str(&format!(
                "[users.\"{}\".attributes]\nregion = {}\n",
                random_string(rng).escape_default(),
                random_value(rng, 1)
            )),
            2 => text.push_str(&format!(
                "[tags]\n\"{}\" = [\"pii\"]\n",
                random_string(rng).escape_default()
            )),
            table => {
                let name = ["grants", "row_filters", "masks"][table - 3];
                text.push_str(&format!("[[{name}]]\n"));
                for _ in 0..rng.random_range(0..6) {
                    let key = KEYS[rng.random_range(0..KEYS.len())];
                    let value = match key {
                        "principals" | "tables" | "except" if rng.random_bool(0.7) => {
                            format!("[\"{}\", \"*\"]", random_string(rng).escape_default())
                        }
                        "effect" if rng.random_bool(0.7) => "\"allow\"".to_owned(),
                        _ => random_value(rng, 2),
                    };
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
    }
    text
}

/// `text` changed in one to four random places.
fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..6) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 => {
                let value = random_value(rng, 2);
                chars.splice(at..at, value.chars());
            }
            3 => chars.truncate(at),
            4 if at < chars.len() => {
                let end = rng.random_range(at..chars.len().min(at + 40) + 1);
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            _ => {
                let key = KEYS[rng.random_range(0..KEYS.len())];
                let line = format!("\n{key} = {}\n", random_value(rng, 1));
                chars.splice(at..at, line.chars());
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn random_bytes_never_panic_the_parser() {
    let mut rng = StdRng::seed_from_u64(0x00C0_FFEE);
    for case in 0..CASES {
        let len = rng.random_range(0..256);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        check(case as u64, &String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn policy_shaped_documents_parse_or_fail_with_a_key() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let mut accepted = 0;
    for case in 0..CASES {
        let text = random_policy(&mut rng);
        if Policy::from_toml(&text).is_ok() {
            accepted += 1;
        }
        check(case as u64, &text);
    }
    // The generator must reach the accepting paths too, or it tests
    // only the refusals.
    assert!(accepted > 0, "no generated document was a valid policy");
}

#[test]
fn mutated_policies_parse_or_fail_with_a_key() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0002);
    let mut accepted = 0;
    for case in 0..CASES {
        let seed = SEEDS[case % SEEDS.len()];
        assert!(Policy::from_toml(seed).is_ok(), "seed documents are valid");
        let text = mutate(&mut rng, seed);
        if Policy::from_toml(&text).is_ok() {
            accepted += 1;
        }
        check(case as u64, &text);
    }
    assert!(accepted > 0, "every mutation was refused");
}

#[test]
fn deeply_nested_documents_are_refused_not_overflowing_the_stack() {
    for depth in [100, 1_000, 50_000] {
        let arrays = format!("admins = {}{}", "[".repeat(depth), "]".repeat(depth));
        check(depth as u64, &arrays);
        let tables = format!(
            "version = {}1{}",
            "{ a = ".repeat(depth),
            " }".repeat(depth)
        );
        check(depth as u64, &tables);
        let dotted = format!("{} = 1", vec!["a"; depth].join("."));
        check(depth as u64, &dotted);
    }
}
