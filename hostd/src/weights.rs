//! The `--weights cpu=W,mem=W,speed=W,net=W` syntax of `hostd place`, parsed
//! strictly into the Companion Manager's [`Weights`].
//!
//! Keys: `cpu` (idle CPU), `mem` (free memory), `speed` (CPU speed), `net`
//! (network round trip); each at most once. Values: whole numbers `0..=65535`;
//! only their ratios matter (SiON paper §4.2.1: the requester scores every
//! permitting node by a weighted sum the user may weigh). Keys not given weigh 0,
//! so `--weights cpu=1` ranks by CPU load alone; at least one weight must be
//! positive. Without `--weights` the library's defaults apply
//! ([`Weights::default`]: `cpu=4,mem=2,speed=3,net=1`).

use sion_companion_mgr::Weights;

/// The accepted syntax, shown with every error.
pub const SYNTAX: &str = "accepted syntax: --weights cpu=W,mem=W,speed=W,net=W with each W a whole number 0..65535 \
(keys may be left out and then weigh 0; default cpu=4,mem=2,speed=3,net=1)";

/// The keys, in display order.
pub const KEYS: [&str; 4] = ["cpu", "mem", "speed", "net"];

/// What is wrong with a `--weights` argument. Every message names the bad part
/// and ends with [`SYNTAX`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    /// Nothing given.
    #[error("bad --weights: empty; {SYNTAX}")]
    Empty,
    /// Two commas in a row, or a leading/trailing comma.
    #[error("bad --weights: empty item at position {0} (two commas in a row?); {SYNTAX}")]
    EmptyItem(usize),
    /// An item without `=`.
    #[error("bad --weights: `{0}` has no `=`; {SYNTAX}")]
    MissingEquals(String),
    /// A key other than `cpu`, `mem`, `speed`, `net`.
    #[error("bad --weights: unknown key `{0}` (keys are cpu, mem, speed, net); {SYNTAX}")]
    UnknownKey(String),
    /// A key given twice.
    #[error("bad --weights: `{0}` given twice; {SYNTAX}")]
    Duplicate(String),
    /// A value that is not a whole number in range.
    #[error("bad --weights: {key}=`{value}`: {why}; {SYNTAX}")]
    BadValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Every weight is 0: every node would score the same.
    #[error("bad --weights: every weight is 0, so every node would score 0; {SYNTAX}")]
    AllZero,
}

/// Parses `cpu=W,mem=W,speed=W,net=W` (any subset, any order; spaces around
/// items, keys and values are ignored).
///
/// # Errors
/// [`WeightsError`] naming the first bad part.
pub fn parse_weights(s: &str) -> Result<Weights, WeightsError> {
    if s.trim().is_empty() {
        return Err(WeightsError::Empty);
    }
    let mut w = Weights {
        cpu_load: 0,
        free_mem: 0,
        cpu_speed: 0,
        network: 0,
    };
    let mut seen = [false; 4];
    for (i, item) in s.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(WeightsError::EmptyItem(i + 1));
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(WeightsError::MissingEquals(item.into()));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(k) = KEYS.iter().position(|&k| k == key) else {
            return Err(WeightsError::UnknownKey(key.into()));
        };
        if std::mem::replace(&mut seen[k], true) {
            return Err(WeightsError::Duplicate(key.into()));
        }
        let v = parse_value(value).map_err(|why| WeightsError::BadValue {
            key: key.into(),
            value: value.into(),
            why,
        })?;
        *match k {
            0 => &mut w.cpu_load,
            1 => &mut w.free_mem,
            2 => &mut w.cpu_speed,
            _ => &mut w.network,
        } = v;
    }
    if w == (Weights {
        cpu_load: 0,
        free_mem: 0,
        cpu_speed: 0,
        network: 0,
    }) {
        return Err(WeightsError::AllZero);
    }
    Ok(w)
}

fn parse_value(v: &str) -> Result<u16, &'static str> {
    if v.is_empty() {
        return Err("no value");
    }
    if v.starts_with('-') {
        return Err("weights cannot be negative");
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u16>().map_err(|_| "at most 65535");
    }
    if v.parse::<f64>().is_ok() {
        return Err("not a whole number (only ratios matter: use cpu=3,mem=1 for 1.5:0.5)");
    }
    Err("not a number")
}

/// `cpu=4,mem=2,speed=3,net=1`: the inverse of [`parse_weights`].
pub fn format_weights(w: &Weights) -> String {
    format!(
        "cpu={},mem={},speed={},net={}",
        w.cpu_load, w.free_mem, w.cpu_speed, w.network
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(cpu_load: u16, free_mem: u16, cpu_speed: u16, network: u16) -> Weights {
        Weights {
            cpu_load,
            free_mem,
            cpu_speed,
            network,
        }
    }

    #[test]
    fn accepts_full_partial_and_spaced_forms() {
        assert_eq!(
            parse_weights("cpu=4,mem=2,speed=3,net=1"),
            Ok(Weights::default())
        );
        assert_eq!(parse_weights("net=7, cpu = 1"), Ok(w(1, 0, 0, 7)));
        assert_eq!(parse_weights("speed=65535"), Ok(w(0, 0, 65535, 0)));
        assert_eq!(parse_weights("mem=0,cpu=007"), Ok(w(7, 0, 0, 0)));
        assert_eq!(parse_weights(" cpu=1 "), Ok(w(1, 0, 0, 0)));
        let all = w(9, 8, 7, 6);
        assert_eq!(parse_weights(&format_weights(&all)), Ok(all));
    }

    #[test]
    fn rejects_with_the_bad_part_named() {
        use WeightsError::*;
        let bad = |v: &str, why: &'static str, key: &str| BadValue {
            key: key.into(),
            value: v.into(),
            why,
        };
        let cases: Vec<(&str, WeightsError)> = vec![
            ("", Empty),
            ("  ", Empty),
            ("cpu=1,,mem=2", EmptyItem(2)),
            ("cpu=1,", EmptyItem(2)),
            (",cpu=1", EmptyItem(1)),
            ("cpu", MissingEquals("cpu".into())),
            ("cpu=1,mem:2", MissingEquals("mem:2".into())),
            ("disk=3", UnknownKey("disk".into())),
            ("CPU=3", UnknownKey("CPU".into())),
            ("=3", UnknownKey("".into())),
            ("cpu=1,cpu=2", Duplicate("cpu".into())),
            ("cpu=-1", bad("-1", "weights cannot be negative", "cpu")),
            ("net=", bad("", "no value", "net")),
            ("mem=abc", bad("abc", "not a number", "mem")),
            ("mem=1e", bad("1e", "not a number", "mem")),
            ("speed=65536", bad("65536", "at most 65535", "speed")),
            ("cpu=0,mem=0", AllZero),
        ];
        for (input, want) in cases {
            let got = parse_weights(input).unwrap_err();
            assert_eq!(got, want, "input {input:?}");
            let text = got.to_string();
            assert!(text.contains(SYNTAX), "{text}");
        }
        let e = parse_weights("cpu=1.5").unwrap_err();
        assert!(
            matches!(&e, BadValue { key, why, .. } if key == "cpu" && why.starts_with("not a whole number"))
        );
        let text = parse_weights("cpu=1,disk=2").unwrap_err().to_string();
        assert!(text.contains("unknown key `disk`"), "{text}");
        assert!(
            parse_weights("cpu=x")
                .unwrap_err()
                .to_string()
                .contains("cpu=`x`: not a number")
        );
    }
}
