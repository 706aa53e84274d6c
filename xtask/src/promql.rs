//! The metric names a PromQL expression reads. Not a PromQL parser: a
//! scanner that drops strings, label matchers, ranges, dashboard variables
//! and grouping clauses, and keeps every other bare word that is neither a
//! function call nor a keyword.

/// Keywords followed by a label list in parentheses.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// The other words of PromQL that are not metric names.
const KEYWORDS: [&str; 9] = [
    "bool", "and", "or", "unless", "offset", "inf", "nan", "le", "atan2",
];

/// The metric names `expr` reads, in order of appearance.
pub fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '{' {
            i = past_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = past_group(&chars, i, '[', ']');
        } else if c == '$' {
            // A dashboard variable: $name or ${name}.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = past_group(&chars, i, '{', '}');
            } else {
                i = past_word(&chars, i);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (0.99, 1e3, 5m).
            i = past_word(&chars, i + 1);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let end = past_word(&chars, i);
            let word: String = chars[i..end].iter().collect();
            let next = past_space(&chars, end);
            if GROUPING.contains(&word.as_str()) && chars.get(next) == Some(&'(') {
                i = past_group(&chars, next, '(', ')');
                continue;
            }
            let called = chars.get(past_grouping(&chars, next)) == Some(&'(');
            if !called && !KEYWORDS.contains(&word.as_str()) && !GROUPING.contains(&word.as_str()) {
                names.push(word);
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

fn past_space(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// Past a `by (…)` or `without (…)` clause at `i` (as in `sum by (le) (…)`),
/// else `i`.
fn past_grouping(chars: &[char], i: usize) -> usize {
    let end = past_word(chars, i);
    let word: String = chars[i..end].iter().collect();
    let open = past_space(chars, end);
    if (word == "by" || word == "without") && chars.get(open) == Some(&'(') {
        past_space(chars, past_group(chars, open, '(', ')'))
    } else {
        i
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.'
}

fn past_word(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|&c| is_word_char(c)) {
        i += 1;
    }
    i
}

/// The index after the string literal opening at `start`.
fn past_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index after the bracketed group opening at `start` (nesting and
/// strings inside it respected).
fn past_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr)
    }

    #[test]
    fn keeps_metrics_and_drops_functions_labels_ranges_and_keywords() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"/x{1}",job="api"}[5m])))"#
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("sum(rate(a_total[1m] offset 5m)) / ignoring(code) group_left sum(b_total) > bool 0.5"),
            ["a_total", "b_total"]
        );
        assert_eq!(
            names("time() - revocation_last_sync_timestamp_seconds > 1e3 and on(instance) up == 1"),
            ["revocation_last_sync_timestamp_seconds", "up"]
        );
        assert_eq!(
            names(r#"rate(x_total{instance=~"$node"}[$__rate_interval])"#),
            ["x_total"]
        );
        assert_eq!(
            names("sum(rate(job:requests:rate5m[5m:1m])) unless ${var}"),
            ["job:requests:rate5m"]
        );
        assert!(names("vector(1)").is_empty());
        assert_eq!(
            names("sum by (le) (rate(h_bucket[1m])) + max without(x)(g)"),
            ["h_bucket", "g"]
        );
    }
}
