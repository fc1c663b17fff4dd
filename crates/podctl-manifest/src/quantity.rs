//! Kubernetes resource quantities (`64Mi`, `1G`, `500m`, `1e3`), converted exactly.
//!
//! The number is kept as a fraction `num / den` in u128 so "0.1" or "100u" never meet floating
//! point; results round up like Kubernetes' `Value()`/`MilliValue()`. Negative quantities are
//! rejected because podctl only uses quantities as limits.

/// Bytes for a memory-style quantity; `None` if it is not a valid non-negative quantity or
/// does not fit in u64.
pub fn parse_quantity_bytes(s: &str) -> Option<u64> {
    let (num, den) = parse(s)?;
    ceil_div(num, den)
}

/// Millicores for a CPU quantity: "500m" -> 500, "1" -> 1000, "0.5" -> 500.
pub fn parse_quantity_millicpu(s: &str) -> Option<u64> {
    let (num, den) = parse(s)?;
    ceil_div(num.checked_mul(1000)?, den)
}

fn ceil_div(num: u128, den: u128) -> Option<u64> {
    u64::try_from(num.div_ceil(den)).ok()
}

/// `<sign><digits>[.<digits>]<suffix>` where suffix is a binary SI suffix (Ki..Ei), a decimal SI
/// suffix (n, u, m, "", k, M, G, T, P, E) or a decimal exponent (e3, E-2).
fn parse(s: &str) -> Option<(u128, u128)> {
    let body = s.strip_prefix('+').unwrap_or(s);
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    // Guards against "." and "1.2.3"; 38 digits is the most u128 holds.
    if int.len() + frac.len() == 0 || frac.contains('.') || int.len() + frac.len() > 38 {
        return None;
    }
    let mut num: u128 = format!("{int}{frac}").parse().ok()?;
    let mut den: u128 = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;

    let binary = |power: u32| 1u128.checked_shl(power);
    let decimal = |exp: i32| -> Option<(u128, u128)> {
        let p = 10u128.checked_pow(exp.unsigned_abs())?;
        Some(if exp >= 0 { (p, 1) } else { (1, p) })
    };
    let (mul, div) = match suffix {
        "Ki" => (binary(10)?, 1),
        "Mi" => (binary(20)?, 1),
        "Gi" => (binary(30)?, 1),
        "Ti" => (binary(40)?, 1),
        "Pi" => (binary(50)?, 1),
        "Ei" => (binary(60)?, 1),
        "n" => decimal(-9)?,
        "u" => decimal(-6)?,
        "m" => decimal(-3)?,
        "" => (1, 1),
        "k" => decimal(3)?,
        "M" => decimal(6)?,
        "G" => decimal(9)?,
        "T" => decimal(12)?,
        "P" => decimal(15)?,
        "E" => decimal(18)?,
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exp.parse().ok()?)?
        }
    };
    num = num.checked_mul(mul)?;
    den = den.checked_mul(div)?;
    Some((num, den))
}
