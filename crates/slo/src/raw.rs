//! `slo.yaml` as keptn's Go structs decode it (yaml.v3 into go-utils' `ServiceLevelObjectives`):
//! unknown keys ignored, any scalar accepted where a string is expected, `null` meaning "not set".
//! Defaults are applied later, in `slo.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawSlo {
    pub filter: Option<BTreeMap<String, Option<String>>>,
    pub comparison: Option<RawComparison>,
    pub objectives: Option<Vec<Option<RawObjective>>>,
    pub total_score: Option<RawTotalScore>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawComparison {
    pub compare_with: Option<String>,
    pub include_result_with_score: Option<String>,
    pub number_of_comparison_results: Option<Int>,
    pub aggregate_function: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawObjective {
    pub sli: Option<String>,
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    pub pass: Option<Vec<Option<RawGroup>>>,
    pub warning: Option<Vec<Option<RawGroup>>>,
    pub weight: Option<Int>,
    pub key_sli: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawGroup {
    pub criteria: Option<Vec<Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RawTotalScore {
    pub pass: Option<String>,
    pub warning: Option<String>,
}

/// A Go `int` field: integers, and floats without fraction (yaml.v3 converts those); `0.5` is an
/// error, as keptn reports for `weight: 0.5`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                // The range check keeps the cast exact.
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Int(v as i64))
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(IntVisitor)
    }
}

/// A Go `bool` field: YAML booleans plus yaml.v3's YAML 1.1 spellings (`yes`, `off`, `Y`, …).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v {
                    "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(Flag(true)),
                    "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(Flag(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(FlagVisitor)
    }
}

/// Decodes the document; an empty file or one holding only comments is an empty SLO, as in Go.
pub(crate) fn decode(raw: &[u8]) -> Result<RawSlo, String> {
    yaml_serde::from_slice(raw).map_err(|e| e.to_string())
}
