//! Loading policies from configuration (feature `serde`).
//!
//! A policy is a map. Each key is a rule key (see the table in the [module docs](super)) or a
//! combinator (`any`, `all`, `not`); several keys in one map must all hold. A rule's value is a
//! string, or a list of strings meaning any of them. `any` and `all` take a list of policies,
//! `not` takes one policy.
//!
//! ```toml
//! trust_domain = "prod.example"
//! any = [
//!     { spiffe_id = "spiffe://prod.example/ns/billing/sa/api" },
//!     { san = ["*.ops.internal", "admin.internal"] },
//! ]
//! not = { ou = "contractors" }
//! ```
//!
//! Mistakes are reported through the format's own error type, which places them in the document
//! (TOML and JSON report line and column).

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{canonical_key, suggest_key, Policy, PolicyError, COMBINATORS, KEYS};

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
        deserializer.deserialize_map(PolicyVisitor)
    }
}

struct PolicyVisitor;

impl<'de> Visitor<'de> for PolicyVisitor {
    type Value = Policy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a policy: a map of rule keys ({}) or combinators ({})",
            KEYS.join(", "),
            COMBINATORS.join(", ")
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Policy, A::Error> {
        let mut seen: Vec<Key> = Vec::new();
        let mut parts: Vec<Policy> = Vec::new();
        // Errors are raised while deserializing the key or the value they are about, so that
        // formats which track positions (TOML, JSON) point at the offending text.
        while let Some(key) = map.next_key::<Key>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate policy key `{}`; to allow several values use a list (`{} = [\"a\", \"b\"]`)",
                    key.name(),
                    key.name()
                )));
            }
            parts.push(map.next_value_seed(ValueSeed(key))?);
            seen.push(key);
        }
        Policy::all(parts).map_err(|_| {
            de::Error::custom(
                "the policy has no rules; an empty policy is refused rather than read as allow-all",
            )
        })
    }
}

/// A policy map key: a rule key or a combinator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Rule(&'static str),
    Any,
    All,
    Not,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Rule(k) => k,
            Key::Any => "any",
            Key::All => "all",
            Key::Not => "not",
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let key = String::deserialize(deserializer)?;
        match key.as_str() {
            "any" => Ok(Key::Any),
            "all" => Ok(Key::All),
            "not" => Ok(Key::Not),
            k => canonical_key(k).map(Key::Rule).ok_or_else(|| {
                de::Error::custom(PolicyError::UnknownKey {
                    key: crate::truncate_for_display(k),
                    suggestion: suggest_key(k, &[]),
                })
            }),
        }
    }
}

/// Deserializes the value of `key` into a policy.
struct ValueSeed(Key);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Policy;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Policy, D::Error> {
        match self.0 {
            Key::Any => {
                Policy::any(Vec::<Policy>::deserialize(deserializer)?).map_err(de::Error::custom)
            }
            Key::All => {
                Policy::all(Vec::<Policy>::deserialize(deserializer)?).map_err(de::Error::custom)
            }
            Key::Not => Ok(Policy::not(Policy::deserialize(deserializer)?)),
            Key::Rule(k) => {
                let values = OneOrMany::deserialize(deserializer)?.0;
                let rules = values
                    .iter()
                    .map(|v| Policy::rule(k, v))
                    .collect::<Result<Vec<_>, PolicyError>>()
                    .map_err(de::Error::custom)?;
                Policy::any(rules).map_err(|_| {
                    de::Error::custom(format!("`{k}` has an empty list; give at least one value"))
                })
            }
        }
    }
}

/// A string or a list of strings.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OneOrMany, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}
