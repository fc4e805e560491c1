//! The protocol `kscale load` speaks: the request (path and JSON body) and what a valid answer
//! is, for kscale-server's `POST /infer` and for the OpenAI-style API of real inference servers
//! (vLLM, TGI, llama.cpp's `llama-server`): `POST /v1/completions` and
//! `POST /v1/chat/completions`, whole or streamed as server-sent events.
//!
//! Bodies are standard OpenAI: no server-specific field (an unknown one may be refused).

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

pub use crate::config::servers::ApiKind;

/// Tokens asked for when `--max-tokens` is not given (OpenAI's default for completions).
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// Largest `--max-tokens` accepted: far beyond any context a load test needs, and it keeps the
/// answer cap ([`Api::answer_cap`]) bounded.
pub const MAX_TOKENS: u32 = 131_072;

/// Most bytes read of an answer to `/infer`; the OpenAI APIs add [`BYTES_PER_TOKEN`] per token
/// asked for. An endless body must not grow the load generator's memory or run forever.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Answer bytes allowed per requested token on the OpenAI APIs: a stream event of vLLM or
/// llama-server is a few hundred bytes.
pub const BYTES_PER_TOKEN: usize = 1024;

/// What every request of a run sends, and how its answer is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The API.
    pub kind: ApiKind,
    /// `input` (infer), `prompt` (completions) or the user message (chat).
    pub prompt: String,
    /// `max_tokens` (OpenAI APIs only).
    pub max_tokens: u32,
    /// `model`, sent only when given (llama-server and TGI ignore it; vLLM defaults to its
    /// served model).
    pub model: Option<String>,
    /// Ask for `text/event-stream` (`"stream": true`).
    pub stream: bool,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            kind: ApiKind::Infer,
            prompt: "hello".into(),
            max_tokens: DEFAULT_MAX_TOKENS,
            model: None,
            stream: false,
        }
    }
}

/// `POST /v1/completions`.
#[derive(Serialize)]
struct CompletionBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    prompt: &'a str,
    max_tokens: u32,
    stream: bool,
}

/// `POST /v1/chat/completions`.
#[derive(Serialize)]
struct ChatBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: [Message<'a>; 1],
    max_tokens: u32,
    stream: bool,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

/// What a valid 2xx answer said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The `pod` field (`/infer`), or kscale-server's `x-kscale-pod` header.
    pub pod: Option<String>,
    /// Server-reported queue wait (`/infer`'s `queue_ms`).
    pub queue_ms: Option<f64>,
    /// Server-reported inference time (`/infer`'s `inference_ms`).
    pub inference_ms: Option<f64>,
    /// `usage.completion_tokens`, when the answer reports it.
    pub completion_tokens: Option<u64>,
    /// Time from the request's start to the first event carrying text (streams only).
    pub ttft: Option<Duration>,
    /// `data:` events received, `[DONE]` excluded (streams only).
    pub events: Option<u64>,
}

impl Api {
    /// Checks the flags together: `--max-tokens`, `--model` and `--stream` mean nothing to
    /// `/infer`, and a silently ignored `--stream` would report no TTFT without saying why.
    pub fn new(
        kind: ApiKind,
        prompt: &str,
        max_tokens: Option<u32>,
        model: Option<&str>,
        stream: bool,
    ) -> Result<Api, String> {
        if kind == ApiKind::Infer {
            let given: Vec<&str> = [
                (max_tokens.is_some(), "--max-tokens"),
                (model.is_some(), "--model"),
                (stream, "--stream"),
            ]
            .into_iter()
            .filter_map(|(set, flag)| set.then_some(flag))
            .collect();
            if !given.is_empty() {
                let verb = if given.len() == 1 { "applies" } else { "apply" };
                return Err(format!(
                    "{} {verb} only to --api completions or --api chat (POST /infer takes only \
                     the prompt)",
                    given.join(", ")
                ));
            }
        }
        let max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(1..=MAX_TOKENS).contains(&max_tokens) {
            return Err(format!(
                "--max-tokens must be between 1 and {MAX_TOKENS}, not {max_tokens}"
            ));
        }
        Ok(Api {
            kind,
            prompt: prompt.to_owned(),
            max_tokens,
            model: model.map(str::to_owned),
            stream,
        })
    }

    /// Path of the endpoint, appended to the base URL's path.
    pub fn path(&self) -> &'static str {
        match self.kind {
            ApiKind::Infer => "/infer",
            ApiKind::Completions => "/v1/completions",
            ApiKind::Chat => "/v1/chat/completions",
        }
    }

    /// The JSON body of every request.
    pub fn body(&self) -> serde_json::Result<Bytes> {
        let model = self.model.as_deref();
        let bytes = match self.kind {
            ApiKind::Infer => serde_json::to_vec(&serde_json::json!({ "input": self.prompt })),
            ApiKind::Completions => serde_json::to_vec(&CompletionBody {
                model,
                prompt: &self.prompt,
                max_tokens: self.max_tokens,
                stream: self.stream,
            }),
            ApiKind::Chat => serde_json::to_vec(&ChatBody {
                model,
                messages: [Message {
                    role: "user",
                    content: &self.prompt,
                }],
                max_tokens: self.max_tokens,
                stream: self.stream,
            }),
        }?;
        Ok(Bytes::from(bytes))
    }

    /// One line for `--dry-run` and messages: the body's kind and its settings.
    pub fn describe(&self) -> String {
        let mut s = match self.kind {
            ApiKind::Infer => "kscale-server body {\"input\"}".to_owned(),
            ApiKind::Completions => format!(
                "OpenAI completions body {{\"prompt\", \"max_tokens\": {}, \"stream\": {}}}",
                self.max_tokens, self.stream
            ),
            ApiKind::Chat => format!(
                "OpenAI chat body {{\"messages\": [user], \"max_tokens\": {}, \"stream\": {}}}",
                self.max_tokens, self.stream
            ),
        };
        if let Some(m) = &self.model {
            s.push_str(&format!(", model {m:?}"));
        }
        s
    }

    /// Most bytes read of one answer (a stream's bytes in all, not per chunk): beyond it the
    /// answer is a bad answer and reading stops.
    pub fn answer_cap(&self) -> usize {
        match self.kind {
            ApiKind::Infer => MAX_ANSWER_BYTES,
            ApiKind::Completions | ApiKind::Chat => MAX_ANSWER_BYTES
                .saturating_add((self.max_tokens as usize).saturating_mul(BYTES_PER_TOKEN)),
        }
    }

    /// True when the answer is read as server-sent events.
    pub fn streams(&self) -> bool {
        self.stream && self.kind != ApiKind::Infer
    }

    /// Reads a whole (not streamed) 2xx answer; the error says why it is not a valid one.
    pub fn parse_answer(&self, body: &[u8]) -> Result<Answer, String> {
        let json: Value = serde_json::from_slice(body).map_err(|_| not_json(body))?;
        let text = match self.kind {
            // kscale-server's answer always has a `result` text.
            ApiKind::Infer => json.get("result"),
            ApiKind::Completions => json.pointer("/choices/0/text"),
            ApiKind::Chat => json.pointer("/choices/0/message/content"),
        };
        if !text.is_some_and(Value::is_string) {
            return Err(format!(
                "has no {}: {}",
                self.text_field(false),
                excerpt(body)
            ));
        }
        Ok(Answer {
            pod: json.get("pod").and_then(Value::as_str).map(str::to_owned),
            queue_ms: json.get("queue_ms").and_then(Value::as_f64),
            inference_ms: json.get("inference_ms").and_then(Value::as_f64),
            completion_tokens: completion_tokens(&json),
            ttft: None,
            events: None,
        })
    }

    fn text_field(&self, stream: bool) -> &'static str {
        match (self.kind, stream) {
            (ApiKind::Infer, _) => "`result` text",
            (ApiKind::Completions, _) => "`choices[0].text`",
            (ApiKind::Chat, false) => "`choices[0].message.content`",
            (ApiKind::Chat, true) => "`choices[0].delta`",
        }
    }
}

fn completion_tokens(json: &Value) -> Option<u64> {
    json.pointer("/usage/completion_tokens")
        .and_then(Value::as_u64)
}

/// The start of a body, for messages.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned()
}

fn not_json(body: &[u8]) -> String {
    format!("is not JSON: {}", excerpt(body))
}

/// Reads a `text/event-stream` answer as it arrives: events are split at blank lines, their
/// `data:` lines joined, and only the event being assembled is held.
#[derive(Debug)]
pub struct EventReader {
    api: Api,
    /// Bytes of the line being assembled.
    line: Vec<u8>,
    /// `data:` of the event being assembled.
    data: Option<String>,
    /// The stream said `data: [DONE]`.
    done: bool,
    answer: Answer,
    events: u64,
}

impl EventReader {
    /// A reader for answers to `api`'s requests.
    pub fn new(api: &Api) -> Self {
        Self {
            api: api.clone(),
            line: Vec::new(),
            data: None,
            done: false,
            answer: Answer::default(),
            events: 0,
        }
    }

    /// Feeds the next bytes of the body; `since_start` is the time since the request started,
    /// recorded as the time to first token when these bytes hold the first text. The error says
    /// why the stream is not a valid answer.
    pub fn feed(&mut self, bytes: &[u8], since_start: Duration) -> Result<(), String> {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            self.line_done(line, since_start)?;
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], since_start: Duration) -> Result<(), String> {
        if line.is_empty() {
            return match self.data.take() {
                Some(data) => self.event(&data, since_start),
                None => Ok(()),
            };
        }
        let Some(value) = line.strip_prefix(b"data:") else {
            // Comments (`: ping`) and the `event:`, `id:`, `retry:` fields.
            return Ok(());
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = std::str::from_utf8(value)
            .map_err(|_| format!("has an event that is not UTF-8: {}", excerpt(value)))?;
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => self.data = Some(value.to_owned()),
        }
        Ok(())
    }

    fn event(&mut self, data: &str, since_start: Duration) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        self.events += 1;
        let json: Value = serde_json::from_str(data)
            .map_err(|_| format!("has an event that {}", not_json(data.as_bytes())))?;
        if let Some(e) = json.get("error") {
            return Err(format!("reported an error in the stream: {e}"));
        }
        let Some(choices) = json.get("choices").and_then(Value::as_array) else {
            return Err(format!(
                "has an event without a {}: {}",
                self.api.text_field(true),
                excerpt(data.as_bytes())
            ));
        };
        // A usage-only event has no choice; any other must be the API's own.
        let text = match (self.api.kind, choices.first()) {
            (_, None) => None,
            // A reasoning model's first tokens are its reasoning (llama-server and vLLM name
            // them `reasoning_content`, newer vLLM `reasoning`).
            (ApiKind::Chat, Some(c)) if c.get("delta").is_some_and(Value::is_object) => {
                ["content", "reasoning_content", "reasoning"]
                    .iter()
                    .filter_map(|k| c["delta"].get(*k))
                    .find(|t| t.as_str().is_some_and(|t| !t.is_empty()))
            }
            (ApiKind::Completions | ApiKind::Infer, Some(c))
                if c.get("text").is_some_and(Value::is_string) =>
            {
                c.get("text")
            }
            (_, Some(_)) => {
                return Err(format!(
                    "has an event whose choice has no {}: {}",
                    self.api.text_field(true),
                    excerpt(data.as_bytes())
                ));
            }
        };
        if self.answer.ttft.is_none() && text.and_then(Value::as_str).is_some_and(|t| !t.is_empty())
        {
            self.answer.ttft = Some(since_start);
        }
        if let Some(n) = completion_tokens(&json) {
            self.answer.completion_tokens = Some(n);
        }
        Ok(())
    }

    /// The answer once the body ended: valid only when the stream said `data: [DONE]`.
    pub fn finish(mut self, since_start: Duration) -> Result<Answer, String> {
        // A last event without its blank line.
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, since_start)?;
        }
        if let Some(data) = self.data.take() {
            self.event(&data, since_start)?;
        }
        if !self.done {
            return Err(format!(
                "ended without `data: [DONE]` after {} events",
                self.events
            ));
        }
        self.answer.events = Some(self.events);
        Ok(self.answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: ApiKind, stream: bool) -> Api {
        Api::new(kind, "hi", None, None, stream).unwrap()
    }

    #[test]
    fn bodies_are_standard() {
        assert_eq!(
            &api(ApiKind::Infer, false).body().unwrap()[..],
            br#"{"input":"hi"}"#
        );
        assert_eq!(
            &api(ApiKind::Completions, true).body().unwrap()[..],
            br#"{"prompt":"hi","max_tokens":16,"stream":true}"#
        );
        let chat = Api::new(ApiKind::Chat, "hi", Some(3), Some("m"), false).unwrap();
        assert_eq!(
            &chat.body().unwrap()[..],
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":false}"#
        );
        assert_eq!(chat.path(), "/v1/chat/completions");
        assert!(
            chat.describe().contains("max_tokens\": 3"),
            "{}",
            chat.describe()
        );
    }

    #[test]
    fn flags_are_checked_together() {
        let e = Api::new(ApiKind::Infer, "x", Some(3), None, true).unwrap_err();
        assert!(e.contains("--max-tokens, --stream"), "{e}");
        for n in [0, MAX_TOKENS + 1] {
            let e = Api::new(ApiKind::Chat, "x", Some(n), None, false).unwrap_err();
            assert!(e.contains("between 1 and 131072"), "{e}");
        }
        assert_eq!(api(ApiKind::Infer, false).answer_cap(), MAX_ANSWER_BYTES);
        assert_eq!(
            api(ApiKind::Chat, false).answer_cap(),
            MAX_ANSWER_BYTES + 16 * BYTES_PER_TOKEN
        );
    }

    #[test]
    fn whole_answers() {
        let c = api(ApiKind::Completions, false);
        let a = c
            .parse_answer(br#"{"choices":[{"text":"x"}],"usage":{"completion_tokens":7}}"#)
            .unwrap();
        assert_eq!(a.completion_tokens, Some(7));
        assert!(c.parse_answer(br#"{"choices":[]}"#).is_err());
        assert!(c.parse_answer(br#"{"result":"x"}"#).is_err());
        let chat = api(ApiKind::Chat, false);
        assert!(
            chat.parse_answer(br#"{"choices":[{"message":{"content":"x"}}]}"#)
                .is_ok()
        );
        assert!(chat.parse_answer(br#"{"choices":[{"text":"x"}]}"#).is_err());
        let infer = api(ApiKind::Infer, false);
        let a = infer
            .parse_answer(br#"{"result":"r","pod":"p","queue_ms":1.5}"#)
            .unwrap();
        assert_eq!((a.pod.as_deref(), a.queue_ms), (Some("p"), Some(1.5)));
        for body in [&b"plain"[..], b"{}", br#"{"result": 5}"#, b"[1]"] {
            assert!(infer.parse_answer(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn streams_split_anywhere() {
        let chat = api(ApiKind::Chat, true);
        let text = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\r\n\r\n\
                    : keep-alive\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"completion_tokens\":2}}\n\n\
                    data: [DONE]\n\n";
        // Byte by byte: the first text arrives with the second event.
        let mut r = EventReader::new(&chat);
        let at_first_text = text.find("\"a\"").unwrap();
        for (i, b) in text.bytes().enumerate() {
            r.feed(&[b], Duration::from_millis(i as u64)).unwrap();
        }
        let a = r.finish(Duration::from_secs(1)).unwrap();
        assert_eq!(a.events, Some(3));
        assert_eq!(a.completion_tokens, Some(2));
        let ttft = a.ttft.unwrap().as_millis() as usize;
        assert!(ttft > at_first_text, "{ttft} {at_first_text}");

        let mut r = EventReader::new(&chat);
        r.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            Duration::ZERO,
        )
        .unwrap();
        let e = r.finish(Duration::ZERO).unwrap_err();
        assert!(e.contains("[DONE]"), "{e}");

        let mut r = EventReader::new(&api(ApiKind::Completions, true));
        assert!(r.feed(b"data: nope\n\n", Duration::ZERO).is_err());
        // A chat delta answering a completions request, and the other way round.
        let mut r = EventReader::new(&api(ApiKind::Completions, true));
        let e = r
            .feed(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
                Duration::ZERO,
            )
            .unwrap_err();
        assert!(e.contains("choices[0].text"), "{e}");
        let mut r = EventReader::new(&chat);
        let event = b"data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
        assert!(r.feed(event, Duration::ZERO).is_err());
        // A usage-only event (OpenAI's `include_usage`) has no choice.
        let mut r = EventReader::new(&chat);
        let events =
            b"data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        r.feed(events, Duration::ZERO).unwrap();
        assert_eq!(r.finish(Duration::ZERO).unwrap().completion_tokens, Some(3));
        // A reasoning model's first token is reasoning.
        let mut r = EventReader::new(&chat);
        let events =
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\ndata: [DONE]\n\n";
        r.feed(events, Duration::from_millis(5)).unwrap();
        let ttft = r.finish(Duration::ZERO).unwrap().ttft;
        assert_eq!(ttft, Some(Duration::from_millis(5)));
        let mut r = EventReader::new(&api(ApiKind::Completions, true));
        assert!(
            r.feed(
                b"data: {\"error\":{\"message\":\"boom\"}}\n\n",
                Duration::ZERO
            )
            .unwrap_err()
            .contains("boom")
        );
        // The last event may lack its blank line.
        let mut r = EventReader::new(&api(ApiKind::Completions, true));
        r.feed(
            b"data: {\"choices\":[{\"text\":\"x\"}]}\n\ndata: [DONE]",
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(r.finish(Duration::ZERO).unwrap().ttft, Some(Duration::ZERO));
    }
}
