//! Load-time typing of policy expressions, as `docs/policies.md` ("Types")
//! specifies: which comparisons make sense, which expressions are
//! conditions, and which string literals are valid values of the field they
//! are compared with. Valid literals are normalised in place (a uuid to lower
//! case, a datetime to its canonical UTC form) so evaluation compares
//! canonical values.
//!
//! The checker knows nothing about resources: the resolver gives it the type
//! of each path. A path that failed to resolve has type `Unknown`, which
//! checks against anything, because its error was already reported.

use super::value::{normalize_value, scalar_attr};
use super::walk::{article, list, suggest};
use crate::policy::{self, BinOp, Expr, Path, SpanTree};
use crate::resource::{AttrType, ScalarType, Span, Value};

/// The type of a path's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathTy {
    /// Bare `actor`: the signed-in user's record, or `null`.
    Actor,
    /// A field's declared type; `id` and `<belongs_to>_id` are uuids, the
    /// timestamps datetimes.
    Field(AttrType),
    /// A path whose own error has already been reported.
    Unknown,
}

/// A typing error; `span` is a byte range in the policy text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeError {
    pub(crate) span: Span,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

/// Checks `expr` as a whole policy (a condition). `spans` must come from
/// parsing `source`, which gave `expr`.
pub(crate) fn check(
    expr: &mut Expr,
    spans: &SpanTree,
    source: &str,
    path_type: &dyn Fn(&Path) -> PathTy,
) -> Vec<TypeError> {
    let mut checker = Checker {
        source,
        path_type,
        errors: Vec::new(),
    };
    checker.condition(expr, spans);
    checker.errors
}

/// The type of a comparison's operand.
#[derive(Debug, Clone)]
enum Ty {
    Null,
    Boolean,
    Number,
    /// A string literal. Uuids, dates, datetimes and enum values are
    /// written as strings, so it may stand for any of them.
    Text,
    Field(AttrType),
    Actor,
    /// Nothing to check: a path with an error, or something that is not a
    /// value at all (reported where it was found).
    Unknown,
}

/// The types of docs/policies.md: values compare only within one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Number,
    String,
    Uuid,
    Date,
    Datetime,
    Json,
    Array,
    Actor,
}

fn field_kind(ty: &AttrType) -> Kind {
    match ty {
        AttrType::String { .. } | AttrType::Text | AttrType::Enum { .. } => Kind::String,
        AttrType::Integer { .. } | AttrType::Float { .. } => Kind::Number,
        AttrType::Boolean => Kind::Boolean,
        AttrType::Uuid => Kind::Uuid,
        AttrType::Date => Kind::Date,
        AttrType::Datetime => Kind::Datetime,
        AttrType::Json => Kind::Json,
        AttrType::Array { .. } => Kind::Array,
    }
}

impl Ty {
    /// `None` for `null`, which compares with every kind, and for `Unknown`.
    fn kind(&self) -> Option<Kind> {
        match self {
            Ty::Null | Ty::Unknown => None,
            Ty::Boolean => Some(Kind::Boolean),
            Ty::Number => Some(Kind::Number),
            Ty::Text => Some(Kind::String),
            Ty::Field(ty) => Some(field_kind(ty)),
            Ty::Actor => Some(Kind::Actor),
        }
    }

    /// "an integer", "a string"… as in "`x` is an integer".
    fn describe(&self) -> String {
        match self {
            Ty::Null => "null".into(),
            Ty::Boolean => "a boolean".into(),
            Ty::Number => "a number".into(),
            Ty::Text => "a string".into(),
            Ty::Field(ty) => describe_field(ty),
            Ty::Actor => "the signed-in user's record".into(),
            Ty::Unknown => "unknown".into(),
        }
    }
}

fn describe_field(ty: &AttrType) -> String {
    match ty {
        AttrType::Text => "a string".into(),
        AttrType::Json => "a json value".into(),
        AttrType::Array { of } => format!("an array of {}", plural(*of)),
        other => format!("{} {}", article(other.name()), other.name()),
    }
}

fn plural(of: ScalarType) -> &'static str {
    match of {
        ScalarType::String | ScalarType::Text => "strings",
        ScalarType::Integer => "integers",
        ScalarType::Float => "floats",
        ScalarType::Boolean => "booleans",
        ScalarType::Uuid => "uuids",
        ScalarType::Date => "dates",
        ScalarType::Datetime => "datetimes",
    }
}

/// How to fix a comparison with a value of `kind` on one side.
fn kind_help(kind: Kind) -> &'static str {
    match kind {
        Kind::Number => "compare numbers with numbers",
        Kind::String => "compare strings with strings; text is quoted, as in `'abc'`",
        Kind::Boolean => {
            "compare booleans with `true` or `false`, or use the boolean alone as a condition"
        }
        Kind::Uuid => "compare uuids with uuids: another id, or a quoted uuid",
        Kind::Date => "compare dates with dates, such as `'2026-01-02'`",
        Kind::Datetime => "compare datetimes with datetimes, such as `'2026-01-02T03:04:05Z'`",
        Kind::Json | Kind::Array | Kind::Actor => "compare it only with `null`",
    }
}

struct Operand {
    ty: Ty,
    span: Span,
}

struct Checker<'a> {
    source: &'a str,
    path_type: &'a dyn Fn(&Path) -> PathTy,
    errors: Vec<TypeError>,
}

impl Checker<'_> {
    fn error(&mut self, span: &Span, message: String, help: impl Into<String>) {
        self.errors.push(TypeError {
            span: span.clone(),
            message,
            help: Some(help.into()),
        });
    }

    /// The source text of a node, for messages.
    fn text(&self, span: &Span) -> String {
        self.source.get(span.clone()).unwrap_or("…").to_owned()
    }

    /// `e` stands where a condition must: the whole policy, or an operand of
    /// `!`, `&&` or `||`.
    fn condition(&mut self, e: &mut Expr, s: &SpanTree) {
        match e {
            Expr::Bool(_) => {}
            Expr::Not(inner) => self.condition(inner, s.child(0)),
            Expr::Binary {
                op: BinOp::And | BinOp::Or,
                lhs,
                rhs,
            } => {
                self.condition(lhs, s.child(0));
                self.condition(rhs, s.child(1));
            }
            Expr::Binary { op, lhs, rhs } => self.comparison(*op, lhs, rhs, s),
            Expr::Path(p) => match (self.path_type)(p) {
                PathTy::Unknown | PathTy::Field(AttrType::Boolean) => {}
                PathTy::Actor => self.error(
                    &s.span,
                    "`actor` alone is not a condition".into(),
                    "to allow any signed-in user, write `actor != null`",
                ),
                PathTy::Field(ty) => {
                    let text = self.text(&s.span);
                    self.error(
                        &s.span,
                        format!("`{text}` is {}, not a condition", describe_field(&ty)),
                        format!(
                            "a condition is a comparison, `true`, `false` or a boolean field; did you mean `{text} != null`?"
                        ),
                    );
                }
            },
            Expr::Null => self.error(
                &s.span,
                "`null` is not a condition".into(),
                "write `false` to allow no one, or compare a value with `null`",
            ),
            Expr::Int(_) | Expr::Float(_) => self.error(
                &s.span,
                "a number is not a condition".into(),
                "write `true` or `false`, or compare the number with a field",
            ),
            Expr::Str(text) => {
                let help = if policy::parse(text).is_ok() {
                    format!("the quotes make it text; write the condition without them: `{text}`")
                } else {
                    "write `true` or `false`, or compare the string with a field".to_owned()
                };
                self.error(&s.span, "a string is not a condition".into(), help);
            }
            Expr::List(_) => self.error(
                &s.span,
                "a list is not a condition".into(),
                "test membership with `in`, as in `actor.role in ['admin', 'coordinator']`",
            ),
        }
    }

    fn comparison(&mut self, op: BinOp, lhs: &mut Expr, rhs: &mut Expr, s: &SpanTree) {
        let left = self.operand(lhs, s.child(0));
        if op == BinOp::In {
            self.membership(&left, lhs, rhs, s.child(1));
            return;
        }
        let right = self.operand(rhs, s.child(1));
        if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) {
            // `&` rather than `&&`: both sides are reported.
            let orderable = self.orderable(&left, op) & self.orderable(&right, op);
            if !orderable {
                return;
            }
        }
        self.comparable(&left, lhs, &right, rhs, &s.span);
    }

    /// The type of a comparison's operand. A list (outside `in`) or a
    /// condition in that place is reported here and checks as `Unknown`.
    fn operand(&mut self, e: &Expr, s: &SpanTree) -> Operand {
        let ty = match e {
            Expr::Null => Ty::Null,
            Expr::Bool(_) => Ty::Boolean,
            Expr::Int(_) | Expr::Float(_) => Ty::Number,
            Expr::Str(_) => Ty::Text,
            Expr::Path(p) => match (self.path_type)(p) {
                PathTy::Actor => Ty::Actor,
                PathTy::Field(ty) => Ty::Field(ty),
                PathTy::Unknown => Ty::Unknown,
            },
            Expr::List(_) => {
                self.error(
                    &s.span,
                    "a list can only be the right side of `in`".into(),
                    "test membership with `in`, as in `actor.role in ['admin', 'coordinator']`",
                );
                Ty::Unknown
            }
            Expr::Not(_) | Expr::Binary { .. } => {
                let text = self.text(&s.span);
                self.error(
                    &s.span,
                    format!("`{text}` is a condition, not a value"),
                    "comparisons compare paths and literals; join conditions with `&&` and `||`",
                );
                Ty::Unknown
            }
        };
        Operand {
            ty,
            span: s.span.clone(),
        }
    }

    /// Whether `side` may be an operand of `<`, `<=`, `>` or `>=`; reports
    /// it if not.
    fn orderable(&mut self, side: &Operand, op: BinOp) -> bool {
        match side.ty.kind() {
            None if matches!(side.ty, Ty::Unknown) => true,
            None => {
                self.error(
                    &side.span,
                    "`null` can't be ordered".into(),
                    format!(
                        "`{}` is false whenever a side is null; test for null with `== null` or `!= null`",
                        op.as_str()
                    ),
                );
                false
            }
            Some(Kind::Number | Kind::String | Kind::Uuid | Kind::Date | Kind::Datetime) => true,
            Some(_) => {
                let text = self.text(&side.span);
                self.error(
                    &side.span,
                    format!("`{text}` is {}, which can't be ordered", side.ty.describe()),
                    "`<`, `<=`, `>` and `>=` compare numbers, strings, uuids, dates and datetimes",
                );
                false
            }
        }
    }

    /// Checks that `a` and `b` may be compared for equality (and, once
    /// `orderable` passed, for order); a string literal facing a field is
    /// checked and normalised against it. A mismatch is reported at `span`.
    fn comparable(&mut self, a: &Operand, ae: &mut Expr, b: &Operand, be: &mut Expr, span: &Span) {
        if a.ty.kind().is_none() || b.ty.kind().is_none() {
            return;
        }
        for side in [a, b] {
            if let Some(Kind::Json | Kind::Array | Kind::Actor) = side.ty.kind() {
                let text = self.text(&side.span);
                self.error(
                    span,
                    format!(
                        "`{text}` is {}, which compares only with `null`",
                        side.ty.describe()
                    ),
                    format!("test it with `{text} == null` or `{text} != null`"),
                );
                return;
            }
        }
        match (&a.ty, &b.ty) {
            (Ty::Text, Ty::Field(ty)) => {
                let subject = format!("`{}` is {}", self.text(&b.span), b.ty.describe());
                if !self.literal(ae, a, ty, &b.span, &subject) {
                    self.mismatch(a, b, span);
                }
            }
            (Ty::Field(ty), Ty::Text) => {
                let subject = format!("`{}` is {}", self.text(&a.span), a.ty.describe());
                if !self.literal(be, b, ty, &a.span, &subject) {
                    self.mismatch(a, b, span);
                }
            }
            _ if a.ty.kind() == b.ty.kind() => {}
            _ => self.mismatch(a, b, span),
        }
    }

    fn mismatch(&mut self, a: &Operand, b: &Operand, span: &Span) {
        // The help is about the field's kind when one side is a field: that
        // is the side the author did not mistype.
        let guide = if matches!(b.ty, Ty::Field(_)) && !matches!(a.ty, Ty::Field(_)) {
            b
        } else {
            a
        };
        let help = guide.ty.kind().map_or("", kind_help);
        self.error(
            span,
            format!(
                "`{}` is {} and `{}` is {}",
                self.text(&a.span),
                a.ty.describe(),
                self.text(&b.span),
                b.ty.describe()
            ),
            help,
        );
    }

    /// A string literal compared with a field of type `ty`. Returns false
    /// when `ty` is not written as a string (a type mismatch, which the
    /// caller reports); otherwise checks that the literal is a valid value,
    /// reporting it if not, and normalises it. `subject` says what the field
    /// is, for hints ("`record.owner_id` is a uuid").
    fn literal(
        &mut self,
        e: &mut Expr,
        lit: &Operand,
        ty: &AttrType,
        field: &Span,
        subject: &str,
    ) -> bool {
        let Expr::Str(value) = e else {
            return true;
        };
        let text = self.text(&lit.span);
        match ty {
            AttrType::String { .. } | AttrType::Text => {}
            AttrType::Enum { values } => {
                if !values.contains(value) {
                    let field = self.text(field);
                    let help = match suggest(value, values.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `'{s}'`?"),
                        None => format!("`{field}` is one of {}", list(values)),
                    };
                    self.error(
                        &lit.span,
                        format!("`{text}` is not a value of `{field}`"),
                        help,
                    );
                }
            }
            AttrType::Uuid | AttrType::Date | AttrType::Datetime => {
                match normalize_value(ty, &Value::String(value.clone())) {
                    Ok(Value::String(canonical)) => *value = canonical,
                    Ok(_) => {}
                    Err(why) => {
                        let example = match ty {
                            AttrType::Uuid => "'0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b'",
                            AttrType::Date => "'2026-01-02'",
                            _ => "'2026-01-02T03:04:05Z'",
                        };
                        // The datetime parser explains a missing offset or
                        // an impossible year better than a generic example.
                        let help =
                            if why.contains("UTC offset") || why.contains("outside the years") {
                                why
                            } else {
                                format!("{subject}; write one like `{example}`")
                            };
                        self.error(
                            &lit.span,
                            format!("`{text}` is not a valid {}", ty.name()),
                            help,
                        );
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// `left in rhs`: `rhs` must be a list literal whose elements each
    /// compare with `left` by `==`, or an array field holding `left`'s type.
    fn membership(&mut self, left: &Operand, lhs: &mut Expr, rhs: &mut Expr, s: &SpanTree) {
        if let Expr::List(items) = rhs {
            for (i, item) in items.iter_mut().enumerate() {
                let at = s.child(i);
                let element = self.operand(item, at);
                self.comparable(left, lhs, &element, item, &at.span);
            }
            return;
        }
        let right = self.operand(rhs, s);
        match &right.ty {
            Ty::Unknown => {}
            Ty::Field(AttrType::Array { of }) => self.element(left, lhs, *of, &right),
            ty => {
                let text = self.text(&right.span);
                self.error(
                    &right.span,
                    format!(
                        "`in` needs a list or an array on its right, and `{text}` is {}",
                        ty.describe()
                    ),
                    "write a list such as `['admin', 'coordinator']`, or name an array field",
                );
            }
        }
    }

    /// `left in array` where the array holds `of` values.
    fn element(&mut self, left: &Operand, lhs: &mut Expr, of: ScalarType, array: &Operand) {
        let elem = scalar_attr(of);
        let array_text = self.text(&array.span);
        let holds = format!("`{array_text}` holds {}", plural(of));
        let fits = match &left.ty {
            Ty::Unknown => true,
            Ty::Null => {
                self.error(
                    &left.span,
                    "`null` is never an element of an array".into(),
                    format!(
                        "`null in {array_text}` is always false; to test for no array, write `{array_text} == null`"
                    ),
                );
                // Reported as what it is rather than as a type mismatch.
                true
            }
            Ty::Text => self.literal(lhs, left, &elem, &array.span, &holds),
            ty => ty.kind() == Some(field_kind(&elem)),
        };
        if fits {
            return;
        }
        let left_text = self.text(&left.span);
        let span = left.span.start..array.span.end;
        self.error(
            &span,
            format!("`{left_text}` is {} but {holds}", left.ty.describe()),
            format!(
                "`in` looks for a value among the array's elements, so it must be one of the {}",
                plural(of)
            ),
        );
    }
}
