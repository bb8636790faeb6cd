//! keptn's Go-template syntax (`{{.data.project}}`, `{{.env.token}}`) over the whole event,
//! with Go's `missingkey=error`: an unknown key is an error, not an empty string.
//!
//! Rendering is done by minijinja (well kept, no dependencies with default features off, strict
//! undefined = Go's `missingkey=error`); there is no maintained Rust implementation of Go's
//! `text/template`. This module translates the Go constructs keptn's users write into minijinja:
//! field paths (`.a.b`, `.`, `$`, `$.a`), `index X "k" …`, `if`/`else if`/`else`/`end`,
//! `range`/`else`/`end` over lists (the dot is the item), `eq ne lt le gt ge and or not`, string
//! and number literals, parentheses, `{{- -}}` trimming and `{{/* comments */}}`. Anything else
//! (pipes, `with`, `define`, `printf`, variables) is refused by name, so a template never
//! silently renders differently from keptn.

use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::BTreeMap;

/// Renders a Go template over `root` (the event as JSON, plus `env`).
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        // Values print as Go's `%v` does for what JSON decodes to: integral floats without
        // `.0`, no quoting of strings.
        env.set_formatter(|out, _state, value| {
            let text = match value.as_str() {
                Some(s) => s.to_string(),
                None if value.is_number() && !value.is_integer() => {
                    f64::try_from(value.clone()).map(|f| format!("{f}")).unwrap_or_else(|_| value.to_string())
                }
                None if value.is_none() => "<no value>".to_string(),
                None => value.to_string(),
            };
            out.write_str(&text).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
        });
        Renderer { env }
    }

    /// `template` rendered over `root`; the error says which construct or key is wrong.
    pub fn render(&self, template: &str, root: &serde_json::Value) -> Result<String, String> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        let translated = translate(template)?;
        let ctx = Value::from(BTreeMap::from([("__dot0".to_string(), to_value(root))]));
        self.env.render_str(&translated, ctx).map_err(|e| describe(&e))
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "the template uses a key the event does not have (keptn's missingkey=error)".to_string()
        }
        _ => format!("the template cannot be rendered: {}", e.detail().unwrap_or("invalid template")),
    }
}

/// JSON to minijinja, keeping integers integers.
fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => items.iter().map(to_value).collect(),
        serde_json::Value::Object(map) => {
            Value::from(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect::<BTreeMap<String, Value>>())
        }
    }
}

/// One piece of a Go template.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    /// The action's inside, trimmed of `-` markers and spaces.
    Action(&'a str),
}

/// Splits into text and actions, applying `{{- ` and ` -}}` trimming to the text around them.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("the template has a {{ without its }}")?;
        let mut inner = &after[..end];
        if let Some(stripped) = inner.strip_prefix("- ") {
            text = text.trim_end();
            inner = stripped;
        }
        trim_next = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_next = true;
            inner = stripped;
        }
        out.push(Piece::Text(text));
        out.push(Piece::Action(inner.trim()));
        rest = &after[end + 2..];
    }
    out.push(Piece::Text(if trim_next { rest.trim_start() } else { rest }));
    Ok(out)
}

/// What an open block ends with.
enum Block {
    If,
    Range,
}

/// The Go template as a minijinja template.
fn translate(template: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut dots = vec!["__dot0".to_string()];
    for piece in pieces(template)? {
        match piece {
            // `{` is the only character that starts minijinja syntax.
            Piece::Text(text) => out.push_str(&text.replace('{', "{{ '{' }}")),
            Piece::Action(action) => {
                if action.starts_with("/*") {
                    if !action.ends_with("*/") {
                        return Err("a template comment must be {{/* … */}}".into());
                    }
                    continue;
                }
                let dot = dots.last().cloned().unwrap_or_default();
                let tokens = lex(action)?;
                let (head, args) = tokens.split_first().ok_or("the template has an empty {{ }}")?;
                match head {
                    Token::Word("if") => {
                        blocks.push(Block::If);
                        out.push_str(&format!("{{% if {} %}}", expression(args, &dot, &dots[0])?));
                    }
                    Token::Word("else") => match (args, blocks.last()) {
                        ([], Some(_)) => out.push_str("{% else %}"),
                        ([Token::Word("if"), cond @ ..], Some(Block::If)) => {
                            out.push_str(&format!("{{% elif {} %}}", expression(cond, &dot, &dots[0])?))
                        }
                        _ => return Err("{{else}} outside an {{if}} or {{range}}".into()),
                    },
                    Token::Word("range") => {
                        let list = expression(args, &dot, &dots[0])?;
                        let item = format!("__dot{}", dots.len());
                        out.push_str(&format!("{{% for {item} in {list} %}}"));
                        dots.push(item);
                        blocks.push(Block::Range);
                    }
                    Token::Word("end") => match blocks.pop() {
                        Some(Block::If) => out.push_str("{% endif %}"),
                        Some(Block::Range) => {
                            dots.pop();
                            out.push_str("{% endfor %}");
                        }
                        None => return Err("{{end}} without an {{if}} or {{range}}".into()),
                    },
                    _ => out.push_str(&format!("{{{{ {} }}}}", expression(&tokens, &dot, &dots[0])?)),
                }
            }
        }
    }
    if !blocks.is_empty() {
        return Err("the template has an {{if}} or {{range}} without its {{end}}".into());
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    /// `.a.b`, `.`, `$`, `$.a`
    Path(&'a str),
    Word(&'a str),
    Str(String),
    Number(&'a str),
    Open,
    Close,
}

fn lex(action: &str) -> Result<Vec<Token<'_>>, String> {
    let mut tokens = Vec::new();
    let bytes = action.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push(Token::Open);
                i += 1
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1
            }
            b'"' | b'`' => {
                let (text, len) = string_literal(&action[i..])?;
                tokens.push(Token::Str(text));
                i += len;
            }
            b'|' => return Err("pipes (|) are not supported in webhook templates".into()),
            _ => {
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'"' | b'|') {
                    i += 1;
                }
                let word = &action[start..i];
                tokens.push(if word.starts_with('.') || word.starts_with('$') {
                    Token::Path(word)
                } else if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                    Token::Number(word)
                } else {
                    Token::Word(word)
                });
            }
        }
    }
    Ok(tokens)
}

/// A Go string literal at the start of `s`: its value and length.
fn string_literal(s: &str) -> Result<(String, usize), String> {
    let quote = s.as_bytes()[0] as char;
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, i + 1)),
            '\\' if quote == '"' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, e)) => value.push(e),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("a string in the template is not closed".into())
}

/// A path as a minijinja expression: `__dotN["a"]["b"]`.
fn path(word: &str, dot: &str, root: &str) -> Result<String, String> {
    let (base, rest) = match word.strip_prefix('$') {
        Some(rest) => (root, rest),
        None => (dot, word),
    };
    if rest.is_empty() || rest == "." {
        return Ok(base.to_string());
    }
    let mut out = base.to_string();
    for field in rest.strip_prefix('.').unwrap_or(rest).split('.') {
        if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("{word:?} is not a field path like .data.project"));
        }
        out.push_str(&format!("[{}]", quote(field)));
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A command (function and arguments, or one operand) as an expression.
fn expression(tokens: &[Token<'_>], dot: &str, root: &str) -> Result<String, String> {
    let operands = operands(tokens, dot, root)?;
    let (first, rest) = operands.split_first().ok_or("an {{if}} or {{range}} needs a value")?;
    let Operand::Function(name) = first else {
        if rest.is_empty() {
            return Ok(first.text().to_string());
        }
        return Err("a template value must be a single field path or a function call".into());
    };
    let args: Vec<&str> = rest.iter().map(Operand::text).collect();
    let need = |n: usize| {
        if args.len() < n { Err(format!("{name} needs {n} arguments in the template")) } else { Ok(()) }
    };
    let binary = |op: &str| -> Result<String, String> {
        need(2)?;
        if args.len() != 2 {
            return Err(format!("{name} takes 2 arguments in the template"));
        }
        Ok(format!("({} {op} {})", args[0], args[1]))
    };
    match *name {
        "eq" => {
            need(2)?;
            let any: Vec<String> = args[1..].iter().map(|b| format!("{} == {b}", args[0])).collect();
            Ok(format!("({})", any.join(" or ")))
        }
        "ne" => binary("!="),
        "lt" => binary("<"),
        "le" => binary("<="),
        "gt" => binary(">"),
        "ge" => binary(">="),
        "and" | "or" => {
            need(2)?;
            Ok(format!("({})", args.join(&format!(" {name} "))))
        }
        "not" => {
            if args.len() != 1 {
                return Err("not takes 1 argument in the template".into());
            }
            Ok(format!("(not {})", args[0]))
        }
        "index" => {
            need(2)?;
            Ok(format!("{}{}", args[0], args[1..].iter().map(|k| format!("[{k}]")).collect::<String>()))
        }
        other => Err(format!(
            "{other:?} is not supported in webhook templates (supported: field paths, index, if/else/end, range/end, eq, ne, lt, le, gt, ge, and, or, not)"
        )),
    }
}

enum Operand {
    Function(&'static str),
    Value(String),
}

impl Operand {
    fn text(&self) -> &str {
        match self {
            Operand::Function(f) => f,
            Operand::Value(v) => v,
        }
    }
}

const FUNCTIONS: &[&str] = &["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "index"];

fn operands(tokens: &[Token<'_>], dot: &str, root: &str) -> Result<Vec<Operand>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Path(p) => out.push(Operand::Value(path(p, dot, root)?)),
            Token::Str(s) => out.push(Operand::Value(quote(s))),
            Token::Number(n) => {
                if n.parse::<f64>().is_err() {
                    return Err(format!("{n:?} is not a number in the template"));
                }
                out.push(Operand::Value(n.to_string()));
            }
            Token::Word(w @ ("true" | "false")) => out.push(Operand::Value(w.to_string())),
            Token::Word(w) => match FUNCTIONS.iter().find(|f| *f == w) {
                Some(f) if out.is_empty() => out.push(Operand::Function(f)),
                _ => {
                    return Err(format!(
                        "{w:?} is not supported in webhook templates (supported: field paths, index, if/else/end, range/end, eq, ne, lt, le, gt, ge, and, or, not)"
                    ));
                }
            },
            Token::Open => {
                let mut depth = 1;
                let start = i + 1;
                while depth > 0 {
                    i += 1;
                    match tokens.get(i) {
                        Some(Token::Open) => depth += 1,
                        Some(Token::Close) => depth -= 1,
                        Some(_) => {}
                        None => return Err("a ( in the template is not closed".into()),
                    }
                }
                out.push(Operand::Value(expression(&tokens[start..i], dot, root)?));
            }
            Token::Close => return Err("a ) in the template has no (".into()),
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> serde_json::Value {
        json!({
            "id": "e1", "type": "sh.keptn.event.mytask.triggered", "shkeptncontext": "c1",
            "data": {"project": "p", "stage": "dev", "result": "pass", "labels": {"team": "a"},
                     "evaluation": {"score": 95.0, "ratio": 0.5, "count": 3}, "list": ["x", "y"]},
            "env": {"token": "s3cr3t"}
        })
    }

    fn render(t: &str) -> Result<String, String> {
        Renderer::new().render(t, &event())
    }

    #[test]
    fn field_paths_render_like_go() {
        assert_eq!(
            render("https://h/{{.data.project}}/{{ .id }}?t={{.env.token}}").unwrap(),
            "https://h/p/e1?t=s3cr3t"
        );
        assert_eq!(
            render("{{.data.evaluation.score}} {{.data.evaluation.ratio}} {{.data.evaluation.count}}").unwrap(),
            "95 0.5 3"
        );
        assert_eq!(render("{{$.shkeptncontext}} {{index .data.labels \"team\"}}").unwrap(), "c1 a");
    }

    #[test]
    fn an_unknown_key_is_an_error_as_with_missingkey_error() {
        let err = render("{{.data.nope}}").unwrap_err();
        assert!(err.contains("a key the event does not have"), "{err}");
        assert!(render("{{.env.other}}").is_err());
        assert!(render("{{if .data.nope}}x{{end}}").is_err());
    }

    #[test]
    fn control_flow_and_comparisons() {
        let t = "{{if eq .data.result \"pass\"}}ok{{else if eq .data.result \"warning\"}}warn{{else}}bad{{end}}";
        assert_eq!(render(t).unwrap(), "ok");
        assert_eq!(render("{{range .data.list}}[{{.}}]{{end}}").unwrap(), "[x][y]");
        assert_eq!(render("{{range .data.list}}{{$.data.project}}{{end}}").unwrap(), "pp");
        assert_eq!(
            render("{{if and (gt .data.evaluation.count 2) (not (eq .data.stage \"prod\"))}}y{{end}}").unwrap(),
            "y"
        );
    }

    #[test]
    fn text_is_kept_verbatim_with_go_trimming() {
        let t = "{\"text\": \"{% raw %} {# #}\",\n  {{- /* note */ -}}\n  \"p\": \"{{.data.project}}\"}\n";
        assert_eq!(render(t).unwrap(), "{\"text\": \"{% raw %} {# #}\",\"p\": \"p\"}\n");
    }

    #[test]
    fn unsupported_constructs_are_named() {
        assert!(render("{{.data.project | printf \"%s\"}}").unwrap_err().contains("pipes"));
        assert!(render("{{printf \"%s\" .id}}").unwrap_err().contains("\"printf\" is not supported"));
        assert!(render("{{with .data}}x{{end}}").unwrap_err().contains("\"with\" is not supported"));
        assert!(render("{{if .id}}x").unwrap_err().contains("without its {{end}}"));
        assert!(render("{{.id").unwrap_err().contains("without its }}"));
        assert!(render("{{.data.a-b}}").unwrap_err().contains("not a field path"));
    }
}
