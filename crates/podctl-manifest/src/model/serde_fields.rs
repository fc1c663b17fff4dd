//! How the model's fields are read and written: quantities as the user wrote them (a string or a
//! bare YAML number), and `false` flags left out of the stored record.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

/// A quantity as the user wrote it: a string, or a bare YAML number.
struct QuantityText(String);

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = QuantityText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"64Mi\" or \"500m\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(s.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<QuantityText, E> {
                // Rust prints 1e3 as "1000" and 0.5 as "0.5": both valid quantity strings.
                Ok(QuantityText(n.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn quantity_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, QuantityText>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

pub(super) fn optional_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<QuantityText>::deserialize(d)?.map(|q| q.0))
}
