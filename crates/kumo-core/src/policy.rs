//! Policy expressions: the small language of `[policies]` and action
//! `policy = "…"` strings.
//!
//! Grammar (lowest precedence first):
//! `or := and ("||" and)*`, `and := not ("&&" not)*`, `not := "!" not | cmp`,
//! `cmp := atom (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") atom)?`,
//! `atom := literal | path | "[" list "]" | "(" or ")"`.
//! Literals: `null`, `true`, `false`, integers, floats, `'single'` or
//! `"double"` quoted strings. Paths start at `actor` or `record`.
//!
//! This module parses ([`parse`]), prints (`Display` on [`Expr`], which
//! reads back to the same tree) and evaluates ([`eval`], the reference
//! interpreter of `docs/policies.md`). Checking that paths name real fields
//! and that the expression is well typed is the loader's job, since it needs
//! the schema.

mod eval;

use std::fmt::{self, Write as _};

use crate::resource::Span;

pub use eval::{EvalContext, compare, eval};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Expr>),
    /// `actor`, `actor.role`, `record.uploader.username`…
    Path(Path),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Actor,
    Record,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: Root,
    pub fields: Vec<String>,
    /// Byte offsets inside the expression text.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    And,
    Or,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Actor => "actor",
            Root::Record => "record",
        }
    }
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    fn is_comparison(self) -> bool {
        !matches!(self, BinOp::And | BinOp::Or)
    }
}

impl Expr {
    /// Every path in the expression, in source order, so callers can check
    /// that each names a real field.
    pub fn paths(&self) -> Vec<&Path> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Path>) {
            match e {
                Expr::Path(p) => out.push(p),
                Expr::List(items) => items.iter().for_each(|i| walk(i, out)),
                Expr::Not(inner) => walk(inner, out),
                Expr::Binary { lhs, rhs, .. } => {
                    walk(lhs, out);
                    walk(rhs, out);
                }
                Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Binding strength, used by the printer to add only the parentheses
    /// the grammar needs.
    fn level(&self) -> u8 {
        match self {
            Expr::Binary { op: BinOp::Or, .. } => 1,
            Expr::Binary { op: BinOp::And, .. } => 2,
            Expr::Not(_) => 3,
            Expr::Binary { .. } => 4,
            _ => 5,
        }
    }

    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.level() < min {
            f.write_str("(")?;
            self.fmt_at(f, 0)?;
            return f.write_str(")");
        }
        match self {
            Expr::Null => f.write_str("null"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Int(i) => write!(f, "{i}"),
            // `{:?}` always prints a `.` or an exponent, so the text reads
            // back as a float rather than an integer.
            Expr::Float(x) => write!(f, "{x:?}"),
            Expr::Str(s) => {
                f.write_str("'")?;
                for c in s.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '\'' => f.write_str("\\'")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c => f.write_char(c)?,
                    }
                }
                f.write_str("'")
            }
            Expr::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.fmt_at(f, 1)?;
                }
                f.write_str("]")
            }
            Expr::Path(p) => {
                f.write_str(p.root.as_str())?;
                for field in &p.fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Expr::Not(inner) => {
                f.write_str("!")?;
                inner.fmt_at(f, 3)
            }
            Expr::Binary { op, lhs, rhs } => {
                let (l, r) = match op {
                    BinOp::Or => (1, 2),
                    BinOp::And => (2, 3),
                    _ => (5, 5),
                };
                lhs.fmt_at(f, l)?;
                write!(f, " {} ", op.as_str())?;
                rhs.fmt_at(f, r)
            }
        }
    }
}

/// Prints the expression in the policy language; parsing the output gives
/// back the same tree (spans aside).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_at(f, 0)
    }
}

/// A syntax error in a policy expression. The span is a byte range in the
/// expression text; the resource loader shifts it into the TOML file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.span.start)
    }
}

impl std::error::Error for ParseError {}

/// Deeper nesting than this is certainly a mistake, and the limit keeps the
/// recursive-descent parser from overflowing the stack on hostile input.
const MAX_DEPTH: usize = 64;

/// Parses a policy expression.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    parse_with_spans(source).map(|(expr, _)| expr)
}

/// Where each node of an expression is in its source, shaped like the
/// expression: `children` are a list's items, the operand of `!`, or a
/// binary expression's `lhs` and `rhs`. The loader uses it to point at a
/// literal or a whole comparison; [`Expr`] itself keeps spans only on paths.
///
/// A parenthesised expression's span leaves out its own parentheses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanTree {
    pub(crate) span: Span,
    pub(crate) children: Vec<SpanTree>,
}

impl SpanTree {
    /// The `i`th child, or the node itself if there is none (which a tree
    /// built by [`parse_with_spans`] never lacks), so a caller can't panic.
    pub(crate) fn child(&self, i: usize) -> &SpanTree {
        self.children.get(i).unwrap_or(self)
    }
}

/// Parses a policy expression and returns the span of each of its nodes.
pub(crate) fn parse_with_spans(source: &str) -> Result<(Expr, SpanTree), ParseError> {
    let tokens = lex(source)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        len: source.len(),
        spans: Vec::new(),
    };
    if parser.peek() == &Tok::Eof {
        return Err(ParseError {
            message: "empty policy expression".into(),
            span: 0..source.len(),
            help: Some(
                "write a condition such as `actor != null`, or `true` to allow everyone".into(),
            ),
        });
    }
    let expr = parser.or()?;
    match parser.peek() {
        Tok::Eof => {
            let mut post_order = parser.spans.into_iter();
            let spans = span_tree(&expr, &mut post_order);
            Ok((expr, spans))
        }
        tok => {
            let tok = tok.clone();
            Err(parser.unexpected(&tok, "after the expression"))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Bang,
    AndAnd,
    OrOr,
    Op(BinOp),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(x) => format!("`{x:?}`"),
            Tok::Str(_) => "a string".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Bang => "`!`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::Op(op) => format!("`{}`", op.as_str()),
            Tok::Eof => "end of the expression".into(),
        }
    }
}

fn err(message: impl Into<String>, span: Span) -> ParseError {
    ParseError {
        message: message.into(),
        span,
        help: None,
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, Span)>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let two = |s: &str| src[i..].starts_with(s);
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            _ if two("&&") => Tok::AndAnd,
            _ if two("||") => Tok::OrOr,
            _ if two("==") => Tok::Op(BinOp::Eq),
            _ if two("!=") => Tok::Op(BinOp::Ne),
            _ if two("<=") => Tok::Op(BinOp::Le),
            _ if two(">=") => Tok::Op(BinOp::Ge),
            b'<' => Tok::Op(BinOp::Lt),
            b'>' => Tok::Op(BinOp::Gt),
            b'!' => Tok::Bang,
            b'=' => {
                return Err(ParseError {
                    message: "`=` is not an operator".into(),
                    span: i..i + 1,
                    help: Some("use `==` to compare".into()),
                });
            }
            b'&' | b'|' => {
                let (op, word) = if c == b'&' {
                    ("&&", "and")
                } else {
                    ("||", "or")
                };
                return Err(ParseError {
                    message: format!("`{}` is not an operator", c as char),
                    span: i..i + 1,
                    help: Some(format!("use `{op}` for {word}")),
                });
            }
            b'\'' | b'"' => {
                let (s, end) = lex_string(src, i)?;
                out.push((Tok::Str(s), start..end));
                i = end;
                continue;
            }
            b'0'..=b'9' | b'-' => {
                let (tok, end) = lex_number(src, i)?;
                out.push((tok, start..end));
                i = end;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = src[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map_or(src.len(), |n| i + n);
                let word = &src[i..end];
                let tok = if word == "in" {
                    Tok::Op(BinOp::In)
                } else {
                    Tok::Ident(word.to_owned())
                };
                out.push((tok, start..end));
                i = end;
                continue;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(
                    format!("unexpected character `{ch}`"),
                    i..i + ch.len_utf8(),
                ));
            }
        };
        i += match tok {
            Tok::AndAnd | Tok::OrOr => 2,
            Tok::Op(BinOp::Eq | BinOp::Ne | BinOp::Le | BinOp::Ge) => 2,
            _ => 1,
        };
        out.push((tok, start..i));
    }
    out.push((Tok::Eof, src.len()..src.len()));
    Ok(out)
}

/// Lexes a `'…'` or `"…"` string starting at `start`; returns the decoded
/// text and the offset just past the closing quote.
fn lex_string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        match c {
            c if c == quote => return Ok((out, at + 1)),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => {
                    return Err(ParseError {
                        message: format!("unknown escape `\\{other}` in string"),
                        span: at..at + 1 + other.len_utf8(),
                        help: Some(
                            "the escapes are `\\\\`, `\\'`, `\\\"`, `\\n`, `\\r` and `\\t`".into(),
                        ),
                    });
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(err("unterminated string", start..src.len()))
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let bytes = src.as_bytes();
    let digits_from = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = start;
    if bytes[i] == b'-' {
        i += 1;
        if i >= bytes.len() || !bytes[i].is_ascii_digit() {
            return Err(ParseError {
                message: "unexpected `-`".into(),
                span: start..start + 1,
                help: Some("`-` only starts a negative number such as `-1`".into()),
            });
        }
    }
    i = digits_from(i);
    let mut float = false;
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        float = true;
        i = digits_from(i + 1);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            float = true;
            i = digits_from(j);
        }
    }
    let text = &src[start..i];
    let out_of_range = || err(format!("number `{text}` is out of range"), start..i);
    if float {
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok((Tok::Float(x), i)),
            _ => Err(out_of_range()),
        }
    } else {
        text.parse::<i64>()
            .map(|n| (Tok::Int(n), i))
            .map_err(|_| out_of_range())
    }
}

/// Rebuilds the tree shape from the spans the parser recorded in post-order
/// (each node right after its children, which is the order it builds them).
fn span_tree(expr: &Expr, post_order: &mut impl Iterator<Item = Span>) -> SpanTree {
    let children = match expr {
        Expr::List(items) => items.iter().map(|i| span_tree(i, post_order)).collect(),
        Expr::Not(inner) => vec![span_tree(inner, post_order)],
        Expr::Binary { lhs, rhs, .. } => {
            let lhs = span_tree(lhs, post_order);
            vec![lhs, span_tree(rhs, post_order)]
        }
        Expr::Null
        | Expr::Bool(_)
        | Expr::Int(_)
        | Expr::Float(_)
        | Expr::Str(_)
        | Expr::Path(_) => Vec::new(),
    };
    let span = post_order.next().unwrap_or(0..0);
    SpanTree { span, children }
}

struct Parser {
    tokens: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
    len: usize,
    /// The span of every node built so far, in the order they were built.
    spans: Vec<Span>,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn span(&self) -> Span {
        self.tokens
            .get(self.pos)
            .map_or(self.len..self.len, |(_, s)| s.clone())
    }

    fn bump(&mut self) -> (Tok, Span) {
        let tok = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::Eof, self.len..self.len));
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn unexpected(&self, tok: &Tok, context: &str) -> ParseError {
        let help = match tok {
            Tok::Ident(w) if w == "and" => Some("use `&&` for and".to_owned()),
            Tok::Ident(w) if w == "or" => Some("use `||` for or".to_owned()),
            Tok::Ident(w) if w == "not" => Some("use `!` for not".to_owned()),
            _ => None,
        };
        ParseError {
            message: format!("unexpected {} {context}", tok.describe()),
            span: self.span(),
            help,
        }
    }

    /// Records the span of the node just built: from `start` to the end of
    /// the last token consumed.
    fn node(&mut self, start: usize) {
        let end = self
            .pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(start, |(_, s)| s.end);
        self.spans.push(start..end.max(start));
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err("expression is nested too deeply", self.span()));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let start = self.span().start;
        let mut lhs = self.and()?;
        while self.peek() == &Tok::OrOr {
            self.bump();
            let rhs = self.and()?;
            lhs = Expr::Binary {
                op: BinOp::Or,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
            self.node(start);
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let start = self.span().start;
        let mut lhs = self.not()?;
        while self.peek() == &Tok::AndAnd {
            self.bump();
            let rhs = self.not()?;
            lhs = Expr::Binary {
                op: BinOp::And,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
            self.node(start);
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == &Tok::Bang {
            let start = self.span().start;
            self.bump();
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            self.node(start);
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let start = self.span().start;
        let lhs = self.atom()?;
        let Tok::Op(op) = *self.peek() else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.atom()?;
        if let Tok::Op(next) = self.peek()
            && next.is_comparison()
        {
            return Err(ParseError {
                message: format!("comparisons can't be chained (`{}`)", next.as_str()),
                span: self.span(),
                help: Some("add parentheses, or join two comparisons with `&&`".into()),
            });
        }
        self.node(start);
        Ok(Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let start = self.span().start;
        let parenthesised = self.peek() == &Tok::LParen;
        let expr = self.value()?;
        // Parentheses make no node: the expression inside recorded its span.
        if !parenthesised {
            self.node(start);
        }
        Ok(expr)
    }

    fn value(&mut self) -> Result<Expr, ParseError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Int(i) => Ok(Expr::Int(i)),
            Tok::Float(x) => Ok(Expr::Float(x)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                self.enter()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.bump() {
                    (Tok::RParen, _) => Ok(inner),
                    (tok, _) => {
                        self.pos -= 1;
                        Err(self.unexpected(&tok, "(expected `)`)"))
                    }
                }
            }
            Tok::LBracket => {
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    if self.peek() == &Tok::RBracket {
                        self.bump();
                        break;
                    }
                    items.push(self.or()?);
                    match self.bump() {
                        (Tok::Comma, _) => {}
                        (Tok::RBracket, _) => break,
                        (tok, _) => {
                            self.pos -= 1;
                            return Err(self.unexpected(&tok, "in list (expected `,` or `]`)"));
                        }
                    }
                }
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Tok::Ident(word) => match word.as_str() {
                "null" => Ok(Expr::Null),
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "actor" => self.path(Root::Actor, span),
                "record" => self.path(Root::Record, span),
                _ => {
                    let guess = ["actor", "record", "null", "true", "false"]
                        .into_iter()
                        .find(|c| strsim::levenshtein(c, &word) <= 2 && word.len() > 2);
                    Err(ParseError {
                        message: format!("unknown name `{word}`"),
                        span,
                        help: Some(match guess {
                            Some(g) => format!("did you mean `{g}`?"),
                            None => {
                                "paths start with `actor` or `record`; strings need quotes".into()
                            }
                        }),
                    })
                }
            },
            tok => {
                self.pos -= 1;
                Err(self.unexpected(&tok, "(expected a value)"))
            }
        }
    }

    fn path(&mut self, root: Root, span: Span) -> Result<Expr, ParseError> {
        let mut fields = Vec::new();
        let mut end = span.end;
        while self.peek() == &Tok::Dot {
            self.bump();
            match self.bump() {
                (Tok::Ident(field), s) => {
                    fields.push(field);
                    end = s.end;
                }
                (Tok::Op(BinOp::In), s) => {
                    fields.push("in".into());
                    end = s.end;
                }
                (tok, _) => {
                    self.pos -= 1;
                    return Err(self.unexpected(&tok, "after `.` (expected a field name)"));
                }
            }
        }
        Ok(Expr::Path(Path {
            root,
            fields,
            span: span.start..end,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each node's text, in the tree's shape, so a test reads like the source.
    fn texts<'s>(source: &'s str, tree: &SpanTree) -> (&'s str, Vec<(&'s str, usize)>) {
        let children = tree
            .children
            .iter()
            .map(|c| (&source[c.span.clone()], c.children.len()))
            .collect();
        (&source[tree.span.clone()], children)
    }

    fn spans(source: &str) -> SpanTree {
        parse_with_spans(source)
            .unwrap_or_else(|e| panic!("{source:?}: {e:?}"))
            .1
    }

    #[test]
    fn every_node_has_its_span() {
        let src = "actor.role in ['admin', \"x\"] && !(record.a == 1.5) || null";
        let tree = spans(src);
        assert_eq!(
            texts(src, &tree),
            (
                src,
                vec![
                    ("actor.role in ['admin', \"x\"] && !(record.a == 1.5)", 2),
                    ("null", 0)
                ]
            )
        );
        let and = &tree.children[0];
        let membership = &and.children[0];
        assert_eq!(
            texts(src, membership),
            (
                "actor.role in ['admin', \"x\"]",
                vec![("actor.role", 0), ("['admin', \"x\"]", 2)]
            )
        );
        assert_eq!(
            texts(src, &membership.children[1]),
            ("['admin', \"x\"]", vec![("'admin'", 0), ("\"x\"", 0)])
        );
        let not = &and.children[1];
        // Parentheses are not nodes; the comparison inside leaves them out.
        assert_eq!(
            texts(src, not),
            ("!(record.a == 1.5)", vec![("record.a == 1.5", 2)])
        );
    }

    #[test]
    fn parentheses_and_whitespace_stay_outside_spans() {
        let src = "  ( (record.x) )  ";
        assert_eq!(texts(src, &spans(src)), ("record.x", vec![]));
        let src = "(1 == 2) == (true)";
        let tree = spans(src);
        assert_eq!(texts(src, &tree), (src, vec![("1 == 2", 2), ("true", 0)]));
    }

    #[test]
    fn the_tree_matches_the_expression_shape() {
        fn same_shape(e: &Expr, t: &SpanTree) -> bool {
            let kids: Vec<&Expr> = match e {
                Expr::List(items) => items.iter().collect(),
                Expr::Not(inner) => vec![inner],
                Expr::Binary { lhs, rhs, .. } => vec![lhs, rhs],
                _ => Vec::new(),
            };
            kids.len() == t.children.len()
                && kids.iter().zip(&t.children).all(|(k, c)| same_shape(k, c))
        }
        for src in [
            "true",
            "!!!record.a",
            "1 == 1 || 2 == 2 || 3 == 3 && 4 in [4, [5, 6], (7)]",
            "((a.b))",
        ] {
            let Ok((expr, tree)) = parse_with_spans(&src.replace("a.b", "actor.b")) else {
                panic!("{src}");
            };
            assert!(same_shape(&expr, &tree), "{src}");
        }
    }
}
