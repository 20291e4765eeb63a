//! MiniJinja templates: a chat target's `template` (and a Discord `thread_name`) and an
//! http target's `body_template`, compiled once when the config is read and rendered
//! once per delivery.
//!
//! Each template gets its own [`Environment`] (built once, shared behind an `Arc`), set
//! up so that what a tweet says can never become markup:
//! - **Every value is escaped.** The formatter, which writes every `{{ ... }}`, passes
//!   the value's text through the escape function of the render call (Slack's, Discord's,
//!   JSON's), whatever filter made it: `upper`, `replace`, `tojson` included. The
//!   template's literal text is the operator's own and is written as it is.
//! - **Nothing opts out.** `safe` (and `escape`/`e`, whose output minijinja marks safe)
//!   are removed, so using them is an unknown filter, refused at start-up: there is no way
//!   to mark a tweet's text as trusted. The only value written unescaped is `tojson`'s
//!   output in a JSON body, which is JSON already.
//! - **Missing fields render empty.** [`UndefinedBehavior::Chainable`]: `{{ a.b.c }}`
//!   with no `a`, and a loop over a missing list, are empty, never an error; `null` is
//!   empty too, as in the older `{field}` form.
//! - **Unknown names are config errors.** minijinja looks filters, tests and functions up
//!   only when it runs them; [`compile`] walks the compiled instructions once and refuses
//!   any it does not know, so a typo is caught by `check`, with its line and column.
//! - **A render is bounded**: fuel caps the instructions one render may run, so a loop in
//!   a template cannot hold a delivery worker.
//!
//! The escape function is chosen per render call (one template type serves every
//! platform), but a formatter is fixed when its environment is built; the call's escape
//! travels to it through a thread-local set for the duration of the (synchronous) render.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

/// How a value's text is made safe for where it goes.
pub type Escape = for<'a> fn(&'a str) -> Cow<'a, str>;

/// The one name each environment holds its template under.
const NAME: &str = "template";

/// Instructions one render may run. A loop over a tweet's entities takes a few hundred;
/// this is room for anything a message needs and a bound on a mistake.
const FUEL: u64 = 200_000;

/// Filters minijinja has that a template may not use: they mark their output as safe,
/// and here nothing is (see the module doc).
const REMOVED_FILTERS: &[&str] = &["safe", "escape", "e"];

/// Functions a template may call besides the environment's globals: a recursive loop
/// calls `loop(...)`.
const SPECIAL_FUNCTIONS: &[&str] = &["loop"];

/// Where a template's output goes, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A chat message: every value through the platform's escape.
    Chat,
    /// A JSON request body: string values JSON-escaped (to sit between quotes), `tojson`
    /// output as it is.
    JsonBody,
    /// Any other request body: values as they are (the content type is the operator's).
    TextBody,
}

/// A compiled template. Cloning shares it.
#[derive(Clone)]
pub struct Jinja {
    /// The environment holding the template, with its filters and formatter.
    env: Arc<Environment<'static>>,
    /// The template's text, for `Debug` and equality.
    source: Arc<str>,
    /// What the output becomes.
    output: Output,
    /// The config key it was read from (`targets.team-slack.template`), for log lines.
    key: Arc<str>,
    /// Set after the first failed render, so a broken template logs a warning once
    /// rather than once per tweet.
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Jinja {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jinja")
            .field("source", &self.source)
            .field("output", &self.output)
            .finish()
    }
}

impl PartialEq for Jinja {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.output == other.output
    }
}

impl Eq for Jinja {}

/// Why a template was refused, and where in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What is wrong, ending with the line and column in the template.
    pub message: String,
    /// Byte range in the template's text, when known.
    pub range: Option<Range<usize>>,
}

/// True when `s` is meant for MiniJinja: it has `{{` or `{%`. Anything else keeps the
/// older `{field}` placeholder form, where `{{` was a literal brace.
pub fn is_jinja(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Compiles `source` for `output`, refusing syntax errors and unknown filters, tests and
/// functions.
pub fn compile(source: &str, output: Output) -> Result<Jinja, CompileError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Spans for errors; the cost is paid only when an error is made.
    env.set_debug(true);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    for name in REMOVED_FILTERS {
        env.remove_filter(name);
    }
    env.add_filter("truncate", truncate);
    env.add_filter("default", default);
    env.add_filter("d", default);
    let trust_tojson = output == Output::JsonBody;
    env.set_formatter(move |out, _state, value| format_value(out, value, trust_tojson));
    env.add_template_owned(NAME, source.to_owned())
        .map_err(|e| located(source, &e, None))?;
    check_names(&env, source)?;
    Ok(Jinja {
        env: Arc::new(env),
        source: source.into(),
        output,
        key: "template".into(),
        failed: Arc::new(AtomicBool::new(false)),
    })
}

impl Jinja {
    /// The same template, named by the config key it was read from.
    pub fn for_key(mut self, key: &str) -> Self {
        self.key = key.into();
        self
    }

    /// The config key it was read from, for log lines.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the output becomes.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The template filled from `event`, every value passed through `escape`.
    pub fn render(
        &self,
        event: &serde_json::Map<String, serde_json::Value>,
        escape: Escape,
    ) -> Result<String, RenderError> {
        let _escape = EscapeScope::enter(escape);
        let template = self.env.get_template(NAME).map_err(RenderError)?;
        template
            .render(Value::from_serialize(event))
            .map_err(RenderError)
    }

    /// True the first time it is called after a render failed: the caller logs then.
    pub fn first_failure(&self) -> bool {
        !self.failed.swap(true, Ordering::Relaxed)
    }
}

/// A template that failed while rendering one event (a loop over a number, a filter fed
/// the wrong type, the fuel run out). Displays as what failed and its line, without the
/// event's values.
#[derive(Debug)]
pub struct RenderError(Error);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))?;
        if let Some(line) = self.0.line() {
            write!(f, " (line {line} of the template)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RenderError {}

/// The error's kind and detail, without minijinja's debug dump (which quotes values).
fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A compile error located at `range` (from the error itself when `None`).
fn located(source: &str, e: &Error, range: Option<Range<usize>>) -> CompileError {
    let range = range.or_else(|| e.range());
    let message = describe(e);
    at(source, message, range, e.line())
}

/// `message` with the template's line and column appended.
fn at(
    source: &str,
    mut message: String,
    range: Option<Range<usize>>,
    line: Option<usize>,
) -> CompileError {
    match &range {
        Some(r) => {
            let (line, column) = line_column(source, r.start);
            let _ = write!(message, " (line {line}, column {column} of the template)");
        }
        None => {
            if let Some(line) = line {
                let _ = write!(message, " (line {line} of the template)");
            }
        }
    }
    CompileError { message, range }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Refuses a filter, test or function the environment does not have. minijinja would
/// only find out when the instruction runs, which may be on the first tweet that takes
/// an `{% if %}` branch, hours after start-up.
fn check_names(env: &Environment<'static>, source: &str) -> Result<(), CompileError> {
    let template = env
        .get_template(NAME)
        .map_err(|e| located(source, &e, None))?;
    let compiled = minijinja::machinery::get_compiled_template(&template);
    let known = |what: &str, name: &str| -> bool {
        let expr = format!("name is {what}");
        env.compile_expression(&expr)
            .and_then(|e| e.eval(minijinja::context! { name }))
            .is_ok_and(|v| v.is_true())
    };
    let globals: Vec<String> = env.globals().map(|(n, _)| n.to_owned()).collect();
    let all = std::iter::once(&compiled.instructions).chain(compiled.blocks.values());
    for instructions in all {
        for idx in 0..instructions.len() as u32 {
            let (what, name) = match instructions.get(idx) {
                Some(Instruction::ApplyFilter(name, ..)) => ("filter", *name),
                Some(Instruction::PerformTest(name, ..)) => ("test", *name),
                Some(Instruction::CallFunction(name, _)) => ("function", *name),
                _ => continue,
            };
            let ok = match what {
                "function" => {
                    globals.iter().any(|g| g == name) || SPECIAL_FUNCTIONS.contains(&name)
                }
                _ => known(what, name),
            };
            if !ok {
                return Err(unknown(source, instructions, idx, what, name));
            }
        }
    }
    Ok(())
}

fn unknown(
    source: &str,
    instructions: &Instructions<'_>,
    idx: u32,
    what: &str,
    name: &str,
) -> CompileError {
    let message = if what == "filter" && REMOVED_FILTERS.contains(&name) {
        format!(
            "the `{name}` filter is not available: every value a template outputs is escaped for its target, and cannot be marked safe"
        )
    } else {
        format!("unknown {what} `{name}`")
    };
    let range = instructions.get_span(idx).map(|s| {
        let start = s.start_offset as usize;
        // The span is the whole expression; point at the name in it when it is there.
        let end = (s.end_offset as usize).min(source.len()).max(start);
        match source.get(start..end).and_then(|t| t.rfind(name)) {
            Some(at) => start + at..start + at + name.len(),
            None => start..end,
        }
    });
    at(source, message, range, instructions.get_line(idx))
}

/// Writes one `{{ ... }}` value: nothing for a missing field or `null`, `tojson`'s JSON
/// as it is in a JSON body, anything else escaped by the current render's function.
fn format_value(
    out: &mut minijinja::Output<'_>,
    value: &Value,
    trust_tojson: bool,
) -> Result<(), Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let text = match value.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(value.to_string()),
    };
    let written = if trust_tojson && value.is_safe() {
        text
    } else {
        let escape = ESCAPE.with(Cell::get);
        Cow::Owned(escape(&text).into_owned())
    };
    out.write_str(&written)
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the output"))
}

thread_local! {
    /// The escape of the render running on this thread; [`nothing`] outside one.
    static ESCAPE: Cell<Escape> = const { Cell::new(nothing) };
}

/// The escape outside a render: writes nothing, so a value can never slip out unescaped.
fn nothing(_: &str) -> Cow<'_, str> {
    Cow::Borrowed("")
}

/// Sets this thread's escape for one render and puts the previous one back after it,
/// even if the render panics.
struct EscapeScope(Escape);

impl EscapeScope {
    fn enter(escape: Escape) -> Self {
        EscapeScope(ESCAPE.with(|e| e.replace(escape)))
    }
}

impl Drop for EscapeScope {
    fn drop(&mut self) {
        ESCAPE.with(|e| e.set(self.0));
    }
}

/// The escape for a value between the quotes of a JSON string: `"`, `\` and control
/// characters escaped. A tweet cannot end the string and add keys of its own.
pub fn json_string(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Cow::Borrowed(s);
    }
    let quoted = serde_json::Value::from(s).to_string();
    Cow::Owned(quoted[1..quoted.len() - 1].to_owned())
}

/// Values as they are, for a body whose content type is not JSON.
pub fn as_is(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

/// Jinja2's `default(value, default_value='', boolean=false)`, except that `null` counts
/// as missing: an event's `null` field renders empty like a missing one, so a default
/// should stand in for it too.
fn default(
    value: &Value,
    other: Option<Value>,
    boolean: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let other = match other {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("default_value")?,
    };
    let boolean = match boolean {
        Some(b) => b,
        None => kwargs.get::<Option<bool>>("boolean")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let missing = value.is_undefined() || value.is_none();
    Ok(if missing || (boolean && !value.is_true()) {
        other.unwrap_or_else(|| Value::from(""))
    } else {
        value.clone()
    })
}

/// Jinja2's `truncate(length=255, killwords=false, end='...', leeway=0)`: text longer
/// than `length` (+ `leeway`) is cut to `length` characters, `end` included, at a word
/// boundary unless `killwords`. minijinja's builtins do not have it.
fn truncate(value: &Value, length: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let text = match value.as_str() {
        Some(s) => s.to_owned(),
        None if value.is_undefined() || value.is_none() => String::new(),
        None => value.to_string(),
    };
    let length = match length {
        Some(n) => n,
        None => kwargs.get::<Option<usize>>("length")?.unwrap_or(255),
    };
    let killwords = kwargs.get::<Option<bool>>("killwords")?.unwrap_or(false);
    let end = kwargs
        .get::<Option<String>>("end")?
        .unwrap_or_else(|| "...".to_owned());
    let leeway = kwargs.get::<Option<usize>>("leeway")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    if text.chars().count() <= length.saturating_add(leeway) {
        return Ok(text);
    }
    let keep = length.saturating_sub(end.chars().count());
    let cut: String = text.chars().take(keep).collect();
    let cut = if killwords {
        cut.as_str()
    } else {
        cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head)
    };
    Ok(format!("{cut}{end}"))
}

#[cfg(test)]
mod tests;
