//! keptn's curl command strings, parsed into a [`Request`] with keptn's rules — and never run:
//! no shell and no curl binary, the request goes out through the one outbound HTTP client.
//!
//! keptn's rules: the rendered command must not contain `$ | ; > $( ␠& && ` `` ` `` or
//! `/var/run`; it is split like a shell would (`'…'` and `"…"` quoting, `\` escapes, an unclosed
//! quote is an error); the first word is `curl`; options that read or write local files
//! (`-o`/`--output`, `-F`/`--form`, `-T`/`--upload-file`, `-K`/`--config`, `--data @file`) are
//! refused. Beyond keptn: options this parser does not know are refused by name, instead of
//! being handed to a curl binary.

use std::time::Duration;

/// The strings keptn refuses anywhere in a rendered command.
pub const FORBIDDEN: &[&str] = &["$", "|", ";", ">", "$(", " &", "&&", "`", "/var/run"];
/// Options keptn refuses (they read or write local files); matched as prefixes, as keptn does.
const FILE_OPTIONS: &[&str] = &["-o", "--output", "-F", "--form", "-T", "--upload-file", "-K", "--config"];

/// One HTTP request, whether it came from a curl string or a v1beta1 object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Upper case. None: GET, or POST when there is a body (curl's rule).
    pub method: Option<String>,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// `-G`/`--get`: the data goes into the query string.
    pub data_in_query: bool,
    /// Data from `-d`: sent form-encoded unless a `Content-Type` header says otherwise (curl's
    /// default, whichever order the options come in).
    pub form_encoded: bool,
    /// `-u user[:password]`.
    pub basic_auth: Option<(String, Option<String>)>,
    /// `-m`/`--max-time`, v1beta1 `timeout`.
    pub timeout: Option<Duration>,
    /// `--retry N` (N + 1 attempts in all), v1beta1 `retry.attempts`.
    pub attempts: Option<u32>,
    /// `--retry-delay S`, v1beta1 `retry.backoff`.
    pub backoff: Option<Duration>,
}

impl Request {
    /// The method sent: the explicit one, else POST with a body (unless `-G`), else GET.
    pub fn effective_method(&self) -> String {
        match &self.method {
            Some(m) => m.clone(),
            None if self.body.is_some() && !self.data_in_query => "POST".into(),
            None => "GET".into(),
        }
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    fn add_data(&mut self, data: &str) {
        self.body = Some(match self.body.take() {
            Some(before) => format!("{before}&{data}"),
            None => data.to_string(),
        });
    }
}

/// The first of [`FORBIDDEN`] the command contains.
pub fn forbidden(command: &str) -> Option<&'static str> {
    // `$(` before `$`, `&&` before ` &`: the message names the longer form.
    ["$(", "&&", "$", "|", ";", ">", " &", "`", "/var/run"].into_iter().find(|f| command.contains(f))
}

/// Splits a command line into words like a POSIX shell (no expansion): `'…'` keeps everything,
/// `"…"` keeps everything but `\"`, `\\`, `` \` `` and `\$`, and an unquoted `\` escapes the
/// next character.
pub fn split(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("the command has an unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '`' | '$')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("the command has an unclosed \" quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("the command has an unclosed \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(e) => {
                    in_word = true;
                    word.push(e);
                }
                None => return Err("the command ends with a lone \\".into()),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A rendered v1alpha1 command, checked and parsed.
pub fn parse_command(command: &str) -> Result<Request, String> {
    if let Some(f) = forbidden(command) {
        return Err(format!("the curl command contains {f:?}, which is not allowed in a webhook request"));
    }
    let words = split(command)?;
    match words.first().map(String::as_str) {
        Some("curl") => {}
        Some(_) => return Err("a webhook request must be a curl command: its first word must be curl".into()),
        None => return Err("the request is empty: write a curl command".into()),
    }
    let mut request = Request::default();
    apply(&mut request, &words[1..], true)?;
    if request.url.is_empty() {
        return Err("the curl command names no URL".into());
    }
    Ok(request)
}

/// Options (v1beta1 `options`) added to a request built from fields; no URL may be among them.
pub fn parse_options(options: &str, request: &mut Request) -> Result<(), String> {
    if let Some(f) = forbidden(options) {
        return Err(format!("options contain {f:?}, which is not allowed in a webhook request"));
    }
    apply(request, &split(options)?, false)
}

/// What an option does with its value.
enum Takes {
    Flag,
    Value,
}

/// Options known, long name first; `None` for a no-op flag. Anything else is refused.
fn lookup(name: &str) -> Option<(&'static str, Takes)> {
    let known: &[(&[&str], Takes)] = &[
        (&["-X", "--request"], Takes::Value),
        (&["-H", "--header"], Takes::Value),
        (&["-d", "--data", "--data-ascii", "--data-binary"], Takes::Value),
        (&["--data-raw"], Takes::Value),
        (&["--json"], Takes::Value),
        (&["-G", "--get"], Takes::Flag),
        (&["-I", "--head"], Takes::Flag),
        (&["-u", "--user"], Takes::Value),
        (&["-A", "--user-agent"], Takes::Value),
        (&["-e", "--referer"], Takes::Value),
        (&["-b", "--cookie"], Takes::Value),
        (&["-m", "--max-time"], Takes::Value),
        (&["--retry"], Takes::Value),
        (&["--retry-delay"], Takes::Value),
        (&["--url"], Takes::Value),
        // Flags without an effect here: output and error reporting (responses always come back
        // whole, HTTP >= 400 always fails, as with keptn's appended --fail-with-body), and
        // redirects (followed on the same host, always; never to another one).
        (&["-s", "--silent", "-S", "--show-error", "-f", "--fail", "--fail-with-body", "-v", "--verbose"], Takes::Flag),
        (&["-i", "--include", "-L", "--location", "--compressed", "-g", "--globoff"], Takes::Flag),
    ];
    known.iter().find(|(names, _)| names.contains(&name)).map(|(names, takes)| {
        let long = names.iter().find(|n| n.starts_with("--")).copied().unwrap_or(names[0]);
        (
            long,
            match takes {
                Takes::Flag => Takes::Flag,
                Takes::Value => Takes::Value,
            },
        )
    })
}

fn apply(request: &mut Request, words: &[String], url_allowed: bool) -> Result<(), String> {
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if let Some(file) = FILE_OPTIONS.iter().find(|f| word.starts_with(*f)) {
            return Err(format!(
                "curl option {file} is not allowed in a webhook request (it reads or writes local files)"
            ));
        }
        if !word.starts_with('-') || word == "-" {
            if !url_allowed {
                return Err(format!("options may hold only options; {word:?} is not one (the URL is the url field)"));
            }
            set_url(request, word)?;
            continue;
        }
        // `-sSL`: bundled short flags; `-XPOST`, `-HAccept: x`: a short option with its value.
        let (name, attached) = match word.strip_prefix("--") {
            Some(_) => (word.as_str(), None),
            None => {
                let (flag, rest) = word.split_at(2.min(word.len()));
                let rest = (!rest.is_empty()).then_some(rest);
                match (lookup(flag), rest) {
                    (Some((_, Takes::Flag)), Some(rest)) => {
                        for c in rest.chars() {
                            let bundled = format!("-{c}");
                            match lookup(&bundled) {
                                Some((long, Takes::Flag)) => option(request, long, None)?,
                                _ => {
                                    return Err(format!(
                                        "curl option {bundled} (in {word}) is not supported in a webhook request"
                                    ));
                                }
                            }
                        }
                        (flag, None)
                    }
                    (_, rest) => (flag, rest),
                }
            }
        };
        let Some((long, takes)) = lookup(name) else {
            return Err(format!("curl option {name} is not supported in a webhook request"));
        };
        let value = match takes {
            Takes::Flag => None,
            Takes::Value => match attached {
                Some(v) => Some(v.to_string()),
                None => {
                    let v = words.get(i).ok_or_else(|| format!("curl option {name} needs a value"))?;
                    i += 1;
                    Some(v.clone())
                }
            },
        };
        if long == "--url" && !url_allowed {
            return Err("options may not name a URL (use the url field)".into());
        }
        option(request, long, value)?;
    }
    Ok(())
}

fn set_url(request: &mut Request, url: &str) -> Result<(), String> {
    if !request.url.is_empty() {
        return Err("a webhook request may name one URL only".into());
    }
    request.url = url.to_string();
    Ok(())
}

fn seconds(name: &str, value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("curl option {name} needs a number of seconds above 0 (got {value:?})")),
    }
}

fn option(request: &mut Request, long: &str, value: Option<String>) -> Result<(), String> {
    let value = value.unwrap_or_default();
    match long {
        "--request" => request.method = Some(value.to_ascii_uppercase()),
        "--head" => request.method = Some("HEAD".into()),
        "--header" => {
            let (k, v) =
                value.split_once(':').ok_or_else(|| format!("curl option --header {value:?} must be 'Name: value'"))?;
            if k.trim().is_empty() {
                return Err(format!("curl option --header {value:?} has no header name"));
            }
            request.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        "--data" => {
            if value.starts_with('@') {
                return Err(
                    "curl option --data @file is not allowed in a webhook request (it reads a local file)".into()
                );
            }
            data(request, &value);
        }
        "--data-raw" => data(request, &value),
        "--json" => {
            if value.starts_with('@') {
                return Err(
                    "curl option --json @file is not allowed in a webhook request (it reads a local file)".into()
                );
            }
            for (k, v) in [("Content-Type", "application/json"), ("Accept", "application/json")] {
                if !request.has_header(k) {
                    request.headers.push((k.into(), v.into()));
                }
            }
            request.add_data(&value);
        }
        "--get" => request.data_in_query = true,
        "--user" => {
            request.basic_auth = Some(match value.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (value, None),
            })
        }
        "--user-agent" => request.headers.push(("User-Agent".into(), value)),
        "--referer" => request.headers.push(("Referer".into(), value)),
        "--cookie" => {
            if !value.contains('=') {
                return Err("curl option --cookie must be name=value here (cookie files are not read)".into());
            }
            request.headers.push(("Cookie".into(), value));
        }
        "--max-time" => request.timeout = Some(seconds(long, &value)?),
        "--retry" => {
            let n: u32 = value.parse().map_err(|_| format!("curl option --retry needs a number (got {value:?})"))?;
            let most = super::config::MAX_ATTEMPTS - 1;
            if n > most {
                return Err(format!("curl option --retry {n} is more than {most} retries"));
            }
            request.attempts = Some(n + 1);
        }
        "--retry-delay" => request.backoff = Some(seconds(long, &value)?),
        "--url" => set_url(request, &value)?,
        _ => {} // the flags without an effect
    }
    Ok(())
}

/// curl's `-d`: joined with `&`, form-encoded unless a Content-Type is given.
fn data(request: &mut Request, value: &str) {
    request.form_encoded = true;
    request.add_data(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        let words = split(r#"curl -H 'a: b c' "x \"y\" \$z" a\ b '' "it's""#).unwrap();
        assert_eq!(words, ["curl", "-H", "a: b c", "x \"y\" $z", "a b", "", "it's"]);
        assert_eq!(split("a\\\nb").unwrap(), ["ab"]);
        assert!(split("curl 'open").unwrap_err().contains("unclosed ' quote"));
        assert!(split("curl \"open").unwrap_err().contains("unclosed \" quote"));
        assert!(split("curl x\\").unwrap_err().contains("lone \\"));
    }

    #[test]
    fn every_forbidden_string_is_refused_by_name() {
        let cases = [
            ("curl http://x/$HOME", "\"$\""),
            ("curl http://x | sh", "\"|\""),
            ("curl http://x; rm -rf /", "\";\""),
            ("curl http://x > /tmp/f", "\">\""),
            ("curl http://x/$(id)", "\"$(\""),
            ("curl http://x &", "\" &\""),
            ("curl http://x&&id", "\"&&\""),
            ("curl http://x/`id`", "\"`\""),
            ("curl --unix-socket /var/run/docker.sock http://x", "\"/var/run\""),
        ];
        for (command, named) in cases {
            let err = parse_command(command).unwrap_err();
            assert!(err.contains(named) && err.contains("not allowed"), "{command}: {err}");
        }
    }

    #[test]
    fn file_options_and_data_from_files_are_refused() {
        for option in [
            "-o /tmp/x",
            "-o/tmp/x",
            "--output /tmp/x",
            "-F a=@/etc/passwd",
            "--form a=b",
            "-T /etc/passwd",
            "--upload-file f",
            "-K cfg",
            "--config cfg",
        ] {
            let err = parse_command(&format!("curl {option} http://x")).unwrap_err();
            assert!(err.contains("is not allowed") && err.contains("local files"), "{option}: {err}");
        }
        for option in ["-d @/etc/passwd", "--data @f", "--data-binary @f", "--json @f"] {
            let err = parse_command(&format!("curl {option} http://x")).unwrap_err();
            assert!(err.contains("@file is not allowed"), "{option}: {err}");
        }
        assert_eq!(parse_command("curl --data-raw @literal http://x").unwrap().body.as_deref(), Some("@literal"));
    }

    #[test]
    fn the_first_word_is_curl_and_unknown_options_are_named() {
        assert!(parse_command("wget http://x").unwrap_err().contains("first word must be curl"));
        assert!(parse_command("  ").unwrap_err().contains("empty"));
        assert!(parse_command("curl -s").unwrap_err().contains("names no URL"));
        assert!(parse_command("curl http://a http://b").unwrap_err().contains("one URL only"));
        let err = parse_command("curl --unix-socket /tmp/s http://x").unwrap_err();
        assert_eq!(err, "curl option --unix-socket is not supported in a webhook request");
        let err = parse_command("curl -sZ http://x").unwrap_err();
        assert!(err.contains("-Z (in -sZ)"), "{err}");
        assert_eq!(parse_command("curl http://x -H").unwrap_err(), "curl option -H needs a value");
    }

    #[test]
    fn a_typical_command_becomes_a_request() {
        let r = parse_command(
            "curl -sSL -X post --header 'Content-Type: application/json' -d '{\"a\": 1}' -u me:pw --max-time 2.5 --retry 2 --retry-delay 1 https://example.com/hook",
        )
        .unwrap();
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.url, "https://example.com/hook");
        assert_eq!(r.headers, [("Content-Type".to_string(), "application/json".to_string())]);
        assert_eq!(r.body.as_deref(), Some("{\"a\": 1}"));
        assert_eq!(r.basic_auth, Some(("me".into(), Some("pw".into()))));
        assert_eq!(r.timeout, Some(Duration::from_millis(2500)));
        assert_eq!((r.attempts, r.backoff), (Some(3), Some(Duration::from_secs(1))));
    }

    #[test]
    fn curl_defaults_for_data_method_and_attached_values() {
        let r = parse_command("curl -d a=1 -d b=2 -XPUT -HX-Key:v http://x").unwrap();
        assert_eq!(r.body.as_deref(), Some("a=1&b=2"));
        assert_eq!(r.effective_method(), "PUT");
        assert!(r.form_encoded && r.headers.len() == 1, "the form default is left to the sender: {:?}", r.headers);
        assert!(r.headers.contains(&("X-Key".into(), "v".into())));
        assert_eq!(parse_command("curl -d x http://x").unwrap().effective_method(), "POST");
        assert_eq!(parse_command("curl http://x").unwrap().effective_method(), "GET");
        assert_eq!(parse_command("curl -I http://x").unwrap().effective_method(), "HEAD");
        let j = parse_command("curl --json '{}' http://x").unwrap();
        assert!(j.headers.contains(&("Content-Type".into(), "application/json".into())));
    }

    #[test]
    fn options_of_a_structured_request_follow_the_same_rules() {
        let mut r = Request::default();
        parse_options("--max-time 3 --retry 1", &mut r).unwrap();
        assert_eq!((r.timeout, r.attempts), (Some(Duration::from_secs(3)), Some(2)));
        assert!(parse_options("-o /tmp/x", &mut r).unwrap_err().contains("not allowed"));
        assert!(parse_options("http://other", &mut r).unwrap_err().contains("the URL is the url field"));
        assert!(parse_options("--url http://other", &mut r).unwrap_err().contains("may not name a URL"));
        assert!(parse_options("--max-time 0", &mut r).unwrap_err().contains("above 0"));
    }
}
