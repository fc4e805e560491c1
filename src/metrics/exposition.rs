//! Just enough of the Prometheus text exposition format to read a pod's gauges (queue depth,
//! requests in flight) from its `/metrics`, for stage 1 and the `--watch` view.

use super::prom::parse_value;

/// The sum over label sets of the samples named exactly `name`; `None` when absent.
pub fn sum_of(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        if &line[..name_end] != name {
            continue;
        }
        // The value follows the label set (which may contain spaces inside quotes).
        let rest = &line[name_end..];
        let after_labels = match rest.strip_prefix('{') {
            Some(r) => match label_set_end(r) {
                Some(i) => &r[i + 1..],
                None => continue,
            },
            None => rest,
        };
        let Some(v) = after_labels.split_whitespace().next() else {
            continue;
        };
        if let Ok(v) = parse_value(v) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

fn label_set_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP inference_queue_depth Requests waiting.\n\
# TYPE inference_queue_depth gauge\n\
inference_queue_depth 3\n\
inference_requests_in_flight{worker=\"a b}\"} 1\n\
inference_requests_in_flight{worker=\"c\"} 1 1700000000000\n\
inference_request_duration_seconds_count 12\n\
inference_queue_depth_other 9\n";

    #[test]
    fn sums_samples_by_exact_name() {
        assert_eq!(sum_of(TEXT, "inference_queue_depth"), Some(3.0));
        assert_eq!(sum_of(TEXT, "inference_requests_in_flight"), Some(2.0));
        assert_eq!(sum_of(TEXT, "absent"), None);
        assert_eq!(
            sum_of("up 1\n", "inference_request_duration_seconds_count"),
            None
        );
        // Names with colons, as vLLM and llama.cpp write them.
        let vllm = "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 4.0\nllamacpp:requests_deferred 2\n";
        assert_eq!(sum_of(vllm, "vllm:num_requests_waiting"), Some(4.0));
        assert_eq!(sum_of(vllm, "llamacpp:requests_deferred"), Some(2.0));
    }
}
