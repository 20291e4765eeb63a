//! Routing: which targets an event goes to.
//!
//! The rules of the contract, compiled once at start-up from `[[routes]]`:
//! - a route's conditions are ANDed, the values in one list ORed; no condition matches all;
//! - `monitors` matches `monitor_name`, `monitor_id`, `rule_tag` or `rule_id`, and
//!   `authors` matches `author_username` with a leading `@` ignored on both sides, both
//!   case-insensitively with `*` wildcards ([`pattern`]);
//! - `text` is a regex on `tweet_text` (an event without text does not match it);
//! - `events` lists event types, `["tweet.detected"]` by default;
//! - `where` tests any field by its dotted path ([`filter`]): strings as patterns,
//!   numbers with `gt`/`gte`/`lt`/`lte`, booleans exactly; a missing field, or one of
//!   another JSON type, never matches;
//! - `unless` excludes an event that any one of its conditions matches (its `events`
//!   has no default: absent, it excludes no type);
//! - routes are tried in file order, each match adds its targets, a matching route with
//!   `stop = true` ends the walk; a target appears once however many routes name it.
//!
//! Files: this one holds the router and the route-by-route walk; [`pattern`] the `*`
//! patterns and case folding; [`filter`] the `where` tests and the paths they read, which
//! [`scan`] picks out of the event's bytes.

mod filter;
mod pattern;
mod scan;

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

use rustc_hash::FxHashMap;

use crate::config::{Exclusion, FieldCondition, RouteConfig};
use crate::event::Event;
use filter::{FieldTest, Paths, Values};
use pattern::{FOLD_INLINE, Glob, fold, fold_in};

/// The compiled routes.
///
/// Matching is organised so that 100 routes cost little more per event than a few: exact
/// monitor and author patterns live in hash maps that say, per event, which routes they
/// satisfy; event types become small integers; all `text` regexes run as one set; all
/// `where` fields are read in one pass over the event. Routes are then ruled in or out a
/// word of 64 at a time ([`Router::candidates`]): only the routes that name the event's
/// type and that the indexes do not rule out are looked at one by one, and only
/// wildcard patterns are tried route by route.
#[derive(Debug, Clone)]
pub struct Router {
    /// In file order.
    routes: Vec<Route>,
    /// How many targets the config has: the size of a route's target set.
    target_count: usize,
    /// Every route's `text` regex (and every `unless` one) in one set: an event's text is
    /// scanned once for all of them (lazily, only when a route gets as far as its text
    /// condition), instead of once per route. `None` past regex's size limit: then each
    /// route runs its own.
    texts: Option<regex::RegexSet>,
    /// The distinct event types routes name (and `unless` ones, as indices into this list).
    event_types: Vec<String>,
    /// Per event type (by its index in `event_types`), the routes whose `events` name it.
    typed: Vec<Bits>,
    /// The routes whose `monitors` the index cannot rule out: no condition, or wildcard
    /// patterns that are tried route by route. Any other route can match an event only
    /// if its `monitors` are among the event's index hits.
    monitors_open: Bits,
    /// Likewise for `authors`.
    authors_open: Bits,
    /// Exact and prefix folded monitor patterns, and the routes that name each.
    monitor_index: PatternIndex,
    /// Exact and prefix folded author patterns (no `@`), and the routes that name each.
    author_index: PatternIndex,
    /// Every path `where` names, anywhere: read from an event (once) only when a route
    /// with `where` gets that far. Empty when no route has `where`.
    paths: Paths,
    /// Every distinct `where` entry (routes and `unless`): configs repeat the same
    /// condition across routes (`lang = "en"` on twenty of them), and each distinct one
    /// is tested at most once per event. Routes hold indices into this list.
    tests: Vec<FieldTest>,
}

/// Up to this many distinct `where` entries, an event remembers each one's result in
/// two words on the stack; beyond, the rest are tested each time a route asks.
const MEMO_TESTS: usize = 128;

#[derive(Debug, Clone)]
struct Route {
    /// `monitors`: exact and prefix patterns via [`Router::monitor_index`], other
    /// wildcards here.
    monitors: Condition,
    /// `authors`: likewise, via [`Router::author_index`].
    authors: Condition,
    /// This route's regex, and its index in [`Router::texts`].
    text: Option<(usize, regex::Regex)>,
    /// `where`, ANDed, as indices into [`Router::tests`]; empty: no condition.
    fields: Vec<usize>,
    /// `unless`: checked last, only for an event the route otherwise matches.
    unless: Option<Unless>,
    /// Indices into the config's targets.
    targets: Vec<usize>,
    /// A match ends the walk.
    stop: bool,
}

/// A compiled `unless`: any one non-empty part excludes.
#[derive(Debug, Clone)]
struct Unless {
    /// Folded patterns (exact ones too: no index, an `unless` is tried only for routes
    /// that matched).
    monitors: Vec<Glob>,
    /// Folded patterns without `@`.
    authors: Vec<Glob>,
    /// The regex and its index in [`Router::texts`].
    text: Option<(usize, regex::Regex)>,
    /// Indices into [`Router::event_types`]; empty: no exclusion by type.
    events: Vec<usize>,
    /// Excludes when all of them hold (indices into [`Router::tests`]); empty: no
    /// exclusion by field.
    fields: Vec<usize>,
}

/// A `monitors` or `authors` condition. Its exact patterns are in the router's index;
/// what stays here are the wildcard ones.
#[derive(Debug, Clone)]
enum Condition {
    /// No condition: any value, or none, matches.
    Any,
    /// Folded patterns with `*`, by shape.
    Patterns { globs: Vec<Glob> },
}

impl Condition {
    /// Whether the index alone cannot rule this condition out: it has none, or it has
    /// wildcard patterns that are tried route by route.
    fn is_open(&self) -> bool {
        match self {
            Condition::Any => true,
            Condition::Patterns { globs } => !globs.is_empty(),
        }
    }
}

/// A pattern as compared: folded, and without a leading `@` for authors.
fn folded_pattern(raw: &str, strip_at: bool) -> String {
    let raw = if strip_at {
        raw.strip_prefix('@').unwrap_or(raw)
    } else {
        raw
    };
    fold(raw).into_owned()
}

/// The exact and the prefix patterns (`user_*`) of every route's `monitors` or
/// `authors`, from pattern to the routes that name it: an event's value is looked up
/// once per distinct prefix length instead of being matched against every route's
/// patterns in turn.
#[derive(Debug, Clone, Default)]
struct PatternIndex {
    /// Whole values.
    exact: FxHashMap<String, Vec<usize>>,
    /// Prefixes, without their `*`.
    prefixes: FxHashMap<String, Vec<usize>>,
    /// The lengths (bytes) of the prefixes, each once.
    prefix_lens: Vec<usize>,
}

impl PatternIndex {
    fn add(map: &mut FxHashMap<String, Vec<usize>>, pattern: &str, route: usize) {
        let routes = map.entry(pattern.to_owned()).or_default();
        if routes.last() != Some(&route) {
            routes.push(route);
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// The routes whose indexed patterns `value` satisfies.
    fn lookup<'s>(&'s self, value: &'s str) -> impl Iterator<Item = &'s Vec<usize>> + 's {
        let prefixes = self.prefix_lens.iter().filter_map(move |&len| {
            value
                .get(..len)
                .and_then(|prefix| self.prefixes.get(prefix))
        });
        self.exact.get(value).into_iter().chain(prefixes)
    }
}

/// From this many routes on, prefix patterns go into the index: a hash lookup per
/// prefix length costs more than a few `starts_with`, and less than dozens.
const INDEX_PREFIXES_FROM: usize = 16;

/// Split one list of patterns into the index (exact, and prefix when `index_prefixes`)
/// and the route's other globs.
fn condition(
    patterns: &[String],
    strip_at: bool,
    route: usize,
    index: &mut PatternIndex,
    index_prefixes: bool,
) -> Condition {
    if patterns.is_empty() {
        return Condition::Any;
    }
    let mut globs = Vec::new();
    for raw in patterns {
        let folded = folded_pattern(raw, strip_at);
        match Glob::new(&folded) {
            Glob::Exact(exact) => PatternIndex::add(&mut index.exact, &exact, route),
            Glob::Prefix(prefix) if index_prefixes => {
                if !index.prefix_lens.contains(&prefix.len()) {
                    index.prefix_lens.push(prefix.len());
                }
                PatternIndex::add(&mut index.prefixes, &prefix, route);
            }
            glob => globs.push(glob),
        }
    }
    Condition::Patterns { globs }
}

/// A set of small indices (routes, targets) as bits: on the stack for up to 256, so that
/// routing an event allocates nothing for them in the usual config.
#[derive(Debug, Clone)]
enum Bits {
    Small([u64; 4]),
    Large(Vec<u64>),
}

impl Bits {
    /// An empty set for indices below `n`. Sets made for the same `n` have the same
    /// number of words, so they can be combined word by word.
    fn new(n: usize) -> Bits {
        if n <= 256 {
            Bits::Small([0; 4])
        } else {
            Bits::Large(vec![0; n.div_ceil(64)])
        }
    }

    /// Which of `routes` routes the index's exact and prefix patterns say the event's
    /// `values` satisfy.
    fn hits<'v>(
        index: &PatternIndex,
        values: impl Iterator<Item = &'v str>,
        routes: usize,
    ) -> Bits {
        let mut hits = Bits::new(routes);
        if index.is_empty() {
            return hits;
        }
        for value in values {
            for found in index.lookup(value) {
                for &r in found {
                    hits.insert(r);
                }
            }
        }
        hits
    }

    fn words(&self) -> &[u64] {
        match self {
            Bits::Small(words) => words,
            Bits::Large(words) => words,
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        match self {
            Bits::Small(words) => words,
            Bits::Large(words) => words,
        }
    }

    /// True when `i` was not in the set yet.
    fn insert(&mut self, i: usize) -> bool {
        let (word, bit) = (&mut self.words_mut()[i / 64], 1u64 << (i % 64));
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    fn contains(&self, i: usize) -> bool {
        self.words()
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn len(&self) -> usize {
        self.words().iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The event's routed fields, folded once per event rather than once per route.
struct Subject<'a> {
    /// Index of the event's type in [`Router::event_types`]; `None`: no route wants it.
    event_type: Option<usize>,
    /// The routes whose exact monitor patterns this event satisfies.
    monitor_hits: Bits,
    /// The routes whose exact author patterns it satisfies.
    author_hits: Bits,
    /// `monitor_name`, `monitor_id`, `rule_tag`, `rule_id`, folded.
    monitors: [Option<Cow<'a, str>>; 4],
    /// `author_username`, folded, without `@`.
    author: Option<Cow<'a, str>>,
    /// `tweet_text`, as it is (regexes carry their own flags).
    text: Option<&'a str>,
    /// Which of the router's text regexes match, computed on first need.
    text_matches: OnceCell<regex::SetMatches>,
    /// The event's bytes, for `where`.
    raw: &'a [u8],
    /// The value at every `where` path, read on first need.
    values: OnceCell<Values<'a>>,
    /// Which of the first [`MEMO_TESTS`] `where` entries were tested for this event...
    tested: Cell<u128>,
    /// ...and which of those held.
    held: Cell<u128>,
}

/// Stack room for the folded monitor fields and author of one event.
type FoldBuffers = [[u8; FOLD_INLINE]; 5];

impl<'a> Subject<'a> {
    fn new(event: &'a Event, router: &Router, buffers: &'a mut FoldBuffers) -> Self {
        let f = event.fields();
        let [b0, b1, b2, b3, b4] = buffers;
        let field = |s: &'a Option<String>, buf| s.as_deref().map(|s| fold_in(s, buf));
        let monitors = [
            field(&f.monitor_name, b0),
            field(&f.monitor_id, b1),
            field(&f.rule_tag, b2),
            field(&f.rule_id, b3),
        ];
        let author = f
            .author_username
            .as_deref()
            .map(|a| fold_in(a.strip_prefix('@').unwrap_or(a), b4));
        let n = router.routes.len();
        Subject {
            event_type: router
                .event_types
                .iter()
                .position(|t| t == event.event_type()),
            monitor_hits: Bits::hits(
                &router.monitor_index,
                monitors.iter().flatten().map(|m| m.as_ref()),
                n,
            ),
            author_hits: Bits::hits(&router.author_index, author.iter().map(|a| a.as_ref()), n),
            monitors,
            author,
            text: f.tweet_text.as_deref(),
            text_matches: OnceCell::new(),
            raw: event.raw(),
            values: OnceCell::new(),
            tested: Cell::new(0),
            held: Cell::new(0),
        }
    }

    fn text_matches(
        &self,
        set: Option<&regex::RegexSet>,
        (index, re): &(usize, regex::Regex),
    ) -> bool {
        let Some(text) = self.text else { return false };
        match set {
            Some(set) => self
                .text_matches
                .get_or_init(|| set.matches(text))
                .matched(*index),
            None => re.is_match(text),
        }
    }

    /// Every one of `fields` (indices into `cx.tests`) holds.
    fn fields_match(&self, cx: &Context<'_, '_>, fields: &[usize]) -> bool {
        let values = self.values.get_or_init(|| cx.paths.read(self.raw));
        fields.iter().all(|&id| {
            let Some(bit) = (id < MEMO_TESTS).then(|| 1u128 << id) else {
                return cx.tests[id].matches(values);
            };
            if self.tested.get() & bit == 0 {
                self.tested.set(self.tested.get() | bit);
                if cx.tests[id].matches(values) {
                    self.held.set(self.held.get() | bit);
                }
            }
            self.held.get() & bit != 0
        })
    }
}

/// What a route is tried against: the event and the router's shared parts.
struct Context<'s, 'a> {
    /// The event's folded fields.
    subject: &'s Subject<'a>,
    /// The router's regex set.
    texts: Option<&'s regex::RegexSet>,
    /// The router's `where` paths.
    paths: &'s Paths,
    /// The router's distinct `where` entries.
    tests: &'s [FieldTest],
}

/// Whether a route takes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Match,
    NoMatch,
    /// Its conditions match, but its `unless` excludes the event.
    Excluded,
}

impl Route {
    /// The route's verdict on a [candidate](Router::candidates): its event type is
    /// already known to match.
    fn verdict(&self, index: usize, cx: &Context<'_, '_>) -> Verdict {
        let s = cx.subject;
        if let Condition::Patterns { globs } = &self.monitors {
            let hit = s.monitor_hits.contains(index)
                || s.monitors
                    .iter()
                    .flatten()
                    .any(|v| globs.iter().any(|g| g.matches(v)));
            if !hit {
                return Verdict::NoMatch;
            }
        }
        if let Condition::Patterns { globs } = &self.authors {
            let hit = s.author_hits.contains(index)
                || s.author
                    .as_ref()
                    .is_some_and(|a| globs.iter().any(|g| g.matches(a)));
            if !hit {
                return Verdict::NoMatch;
            }
        }
        if !self.fields.is_empty() && !s.fields_match(cx, &self.fields) {
            return Verdict::NoMatch;
        }
        if let Some(text) = &self.text
            && !s.text_matches(cx.texts, text)
        {
            return Verdict::NoMatch;
        }
        match &self.unless {
            Some(unless) if unless.excludes(cx) => Verdict::Excluded,
            _ => Verdict::Match,
        }
    }
}

impl Unless {
    fn new<'c>(u: &'c Exclusion, r: &mut Compiler<'c>) -> Unless {
        Unless {
            monitors: u
                .monitors
                .iter()
                .map(|p| Glob::new(&folded_pattern(p, false)))
                .collect(),
            authors: u
                .authors
                .iter()
                .map(|p| Glob::new(&folded_pattern(p, true)))
                .collect(),
            text: u.text.as_ref().map(|re| r.text(re)),
            events: u.events.iter().map(|e| r.event_type(e)).collect(),
            fields: u.fields.iter().map(|c| r.field_test(c)).collect(),
        }
    }

    fn excludes(&self, cx: &Context<'_, '_>) -> bool {
        let s = cx.subject;
        let any = |globs: &[Glob], value: Option<&str>| {
            value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
        };
        s.event_type.is_some_and(|t| self.events.contains(&t))
            || s.monitors.iter().any(|m| any(&self.monitors, m.as_deref()))
            || any(&self.authors, s.author.as_deref())
            || self
                .text
                .as_ref()
                .is_some_and(|text| s.text_matches(cx.texts, text))
            || (!self.fields.is_empty() && s.fields_match(cx, &self.fields))
    }
}

/// The outcome of routing one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Indices of the routes that matched, in file order.
    pub routes: Vec<usize>,
    /// Indices of the targets, each once, in the order routes named them.
    pub targets: Vec<usize>,
    /// Indices of the routes whose conditions matched but whose `unless` excluded the
    /// event (tried before a `stop`), for `route` to say why a route did not take it.
    pub excluded: Vec<usize>,
}

/// The shared parts being gathered while routes are compiled.
#[derive(Default)]
struct Compiler<'c> {
    /// Every `text` regex, in the order of the set.
    patterns: Vec<&'c str>,
    /// The distinct event types.
    event_types: Vec<String>,
    /// Every `where` path.
    paths: Paths,
    /// The distinct `where` entries.
    tests: Vec<FieldTest>,
}

impl<'c> Compiler<'c> {
    /// A regex's entry for the set, and its index there.
    fn text(&mut self, re: &'c regex::Regex) -> (usize, regex::Regex) {
        self.patterns.push(re.as_str());
        (self.patterns.len() - 1, re.clone())
    }

    /// The index of `condition`'s compiled test, shared with any equal one.
    fn field_test(&mut self, condition: &FieldCondition) -> usize {
        let test = FieldTest::new(condition, &mut self.paths);
        match self.tests.iter().position(|t| *t == test) {
            Some(p) => p,
            None => {
                self.tests.push(test);
                self.tests.len() - 1
            }
        }
    }

    fn event_type(&mut self, e: &str) -> usize {
        match self.event_types.iter().position(|t| t == e) {
            Some(p) => p,
            None => {
                self.event_types.push(e.to_owned());
                self.event_types.len() - 1
            }
        }
    }
}

impl Router {
    pub fn new(routes: &[RouteConfig], target_count: usize) -> Router {
        let mut c = Compiler::default();
        let mut monitor_index = PatternIndex::default();
        let mut author_index = PatternIndex::default();
        let index_prefixes = routes.len() >= INDEX_PREFIXES_FROM;
        let n = routes.len();
        let mut route_types = Vec::with_capacity(n);
        let (mut monitors_open, mut authors_open) = (Bits::new(n), Bits::new(n));
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                route_types.push(r.events.iter().map(|e| c.event_type(e)).collect::<Vec<_>>());
                let route = Route {
                    monitors: condition(&r.monitors, false, i, &mut monitor_index, index_prefixes),
                    authors: condition(&r.authors, true, i, &mut author_index, index_prefixes),
                    text: r.text.as_ref().map(|re| c.text(re)),
                    fields: r.fields.iter().map(|f| c.field_test(f)).collect(),
                    unless: r.unless.as_ref().map(|u| Unless::new(u, &mut c)),
                    targets: r.targets.clone(),
                    stop: r.stop,
                };
                if route.monitors.is_open() {
                    monitors_open.insert(i);
                }
                if route.authors.is_open() {
                    authors_open.insert(i);
                }
                route
            })
            .collect();
        // Sized after every route and `unless` has named its types.
        let mut typed = vec![Bits::new(n); c.event_types.len()];
        for (i, types) in route_types.iter().enumerate() {
            for &t in types {
                typed[t].insert(i);
            }
        }
        // Each pattern compiled on its own in the config; a set of them can still pass
        // regex's size limit, and then each route checks its own regex.
        let texts = regex::RegexSet::new(&c.patterns).ok();
        Router {
            routes,
            target_count,
            texts,
            event_types: c.event_types,
            typed,
            monitors_open,
            authors_open,
            monitor_index,
            author_index,
            paths: c.paths,
            tests: c.tests,
        }
    }

    /// Walk the routes for one event.
    pub fn route(&self, event: &Event) -> Routing {
        let mut buffers = [[0; FOLD_INLINE]; 5];
        let subject = Subject::new(event, self, &mut buffers);
        let mut out = Routing::default();
        let Some(candidates) = self.candidates(&subject) else {
            return out;
        };
        let cx = Context {
            subject: &subject,
            texts: self.texts.as_ref(),
            paths: &self.paths,
            tests: &self.tests,
        };
        let mut left = candidates.len();
        let mut seen = Bits::new(self.target_count);
        'walk: for (w, &word) in candidates.words().iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let route = &self.routes[i];
                let verdict = route.verdict(i, &cx);
                left -= 1;
                match verdict {
                    Verdict::NoMatch => continue,
                    Verdict::Excluded => {
                        out.excluded.push(i);
                        continue;
                    }
                    Verdict::Match => {}
                }
                if out.routes.is_empty() {
                    // At most the candidates left can match: one allocation, not one
                    // per doubling.
                    out.routes.reserve(left + 1);
                    out.targets.reserve(self.target_count.min(16));
                }
                out.routes.push(i);
                for &t in &route.targets {
                    if seen.insert(t) {
                        out.targets.push(t);
                    }
                }
                if route.stop {
                    break 'walk;
                }
            }
        }
        out
    }

    /// The routes worth a look for this event, in file order: those that name its event
    /// type and whose `monitors` and `authors` are either hit by the index or not decided
    /// by it. Word by word, so the many routes an event's monitor and author rule out
    /// are never touched. `None` for an event type no route names.
    fn candidates(&self, subject: &Subject<'_>) -> Option<Bits> {
        let mut candidates = self.typed[subject.event_type?].clone();
        let (monitors, authors) = (subject.monitor_hits.words(), subject.author_hits.words());
        let (monitors_open, authors_open) = (self.monitors_open.words(), self.authors_open.words());
        for (w, word) in candidates.words_mut().iter_mut().enumerate() {
            *word &= (monitors_open[w] | monitors[w]) & (authors_open[w] | authors[w]);
        }
        Some(candidates)
    }
}

#[cfg(test)]
mod tests;
