//! Floating-point values in PostgreSQL's text form (`float8out`,
//! `float4out` with `extra_float_digits` ≥ 1, the default since
//! PostgreSQL 12): the shortest digits that read back exactly, in fixed
//! notation when the decimal exponent is from -4 up to (not including) 15
//! for float8 and 6 for float4, otherwise in exponent form with a sign and
//! at least two exponent digits: `84`, `2.25`, `0.0001`, `1e-05`,
//! `1.2345678901234568e+17`.

/// `value` (printed shortest by Rust as `{:e}`) as PostgreSQL prints it;
/// `fixed_below` is 15 for float8 and 6 for float4.
pub(crate) fn pg_float_text(shortest_exp: &str, fixed_below: i32) -> String {
    // `{:e}` of a finite, non-zero value: [-]d[.ddd]e[-]x
    let (negative, rest) = match shortest_exp.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest_exp),
    };
    let Some((mantissa, exponent)) = rest.split_once('e') else {
        return shortest_exp.to_owned();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return shortest_exp.to_owned();
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-4..fixed_below).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        } else {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', whole - digits.len()));
            } else {
                out.push_str(&digits[..whole]);
                out.push('.');
                out.push_str(&digits[whole..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.abs()));
    }
    out
}

/// A float8 as PostgreSQL prints it, `None` where pgwire's own text is
/// already PostgreSQL's (zero, NaN, infinities).
pub(crate) fn float8(value: f64) -> Option<String> {
    (value.is_finite() && value != 0.0).then(|| pg_float_text(&format!("{value:e}"), 15))
}

/// A float4 likewise.
pub(crate) fn float4(value: f32) -> Option<String> {
    (value.is_finite() && value != 0.0).then(|| pg_float_text(&format!("{value:e}"), 6))
}

#[cfg(test)]
mod tests {
    use super::{float4, float8};

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        for (value, text) in [
            (84.0, "84"),
            (2.25, "2.25"),
            (-0.5, "-0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (123456789012345.0, "123456789012345"),
            (1234567890123456.0, "1.234567890123456e+15"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e100, "1e+100"),
            (-1.5e-7, "-1.5e-07"),
        ] {
            assert_eq!(float8(value).as_deref(), Some(text), "{value}");
        }
        assert_eq!(float8(0.0), None);
        assert_eq!(float8(f64::NAN), None);
        for (value, text) in [
            (84.0f32, "84"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.1, "0.1"),
        ] {
            assert_eq!(float4(value).as_deref(), Some(text), "{value}");
        }
    }
}
