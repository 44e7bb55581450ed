//! The policy language: precedence, literals, lists, errors with positions,
//! and property tests that the parser never panics and that printing then
//! parsing gives back the same tree.

use kumo_core::policy::{BinOp, Expr, ParseError, Path, Root, parse};
use proptest::prelude::*;

fn p(src: &str) -> Expr {
    parse(src).unwrap_or_else(|e| panic!("{src:?}: {e:?}"))
}

fn err(src: &str) -> ParseError {
    match parse(src) {
        Ok(e) => panic!("{src:?} parsed as {e:?}"),
        Err(e) => e,
    }
}

fn path(root: Root, fields: &[&str], span: std::ops::Range<usize>) -> Expr {
    Expr::Path(Path {
        root,
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        span,
    })
}

fn bin(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

/// Spans differ between a printed and an original tree; compare without.
fn strip(e: &Expr) -> Expr {
    match e {
        Expr::Path(p) => Expr::Path(Path {
            span: 0..0,
            ..p.clone()
        }),
        Expr::List(items) => Expr::List(items.iter().map(strip).collect()),
        Expr::Not(inner) => Expr::Not(Box::new(strip(inner))),
        Expr::Binary { op, lhs, rhs } => bin(*op, strip(lhs), strip(rhs)),
        other => other.clone(),
    }
}

#[test]
fn paths_and_literals() {
    assert_eq!(p("actor"), path(Root::Actor, &[], 0..5));
    assert_eq!(
        p("  record.uploader.username"),
        path(Root::Record, &["uploader", "username"], 2..26)
    );
    assert_eq!(p("null"), Expr::Null);
    assert_eq!(p("true"), Expr::Bool(true));
    assert_eq!(p("false"), Expr::Bool(false));
    assert_eq!(p("42"), Expr::Int(42));
    assert_eq!(p("-7"), Expr::Int(-7));
    assert_eq!(p("-9223372036854775808"), Expr::Int(i64::MIN));
    assert_eq!(p("1.5"), Expr::Float(1.5));
    assert_eq!(p("2e3"), Expr::Float(2000.0));
    assert_eq!(p("'single'"), Expr::Str("single".into()));
    assert_eq!(p("\"double\""), Expr::Str("double".into()));
    assert_eq!(p(r#"'it\'s'"#), Expr::Str("it's".into()));
    assert_eq!(p(r#""say \"hi\"""#), Expr::Str("say \"hi\"".into()));
    assert_eq!(p(r#"'a\\b\n\t'"#), Expr::Str("a\\b\n\t".into()));
    assert_eq!(p("\"it's\""), Expr::Str("it's".into()));
}

#[test]
fn precedence_or_below_and_below_not_below_comparison() {
    // a || b && c  ==  a || (b && c)
    assert_eq!(
        strip(&p("true || false && null")),
        bin(
            BinOp::Or,
            Expr::Bool(true),
            bin(BinOp::And, Expr::Bool(false), Expr::Null)
        )
    );
    // a && b || c  ==  (a && b) || c
    assert_eq!(
        strip(&p("true && false || null")),
        bin(
            BinOp::Or,
            bin(BinOp::And, Expr::Bool(true), Expr::Bool(false)),
            Expr::Null
        )
    );
    // `!` applies to the whole comparison.
    assert_eq!(
        strip(&p("!actor == null")),
        Expr::Not(Box::new(bin(
            BinOp::Eq,
            path(Root::Actor, &[], 0..0),
            Expr::Null
        )))
    );
    // Left associative.
    assert_eq!(
        strip(&p("1 == 1 || 2 == 2 || 3 == 3")),
        bin(
            BinOp::Or,
            bin(
                BinOp::Or,
                bin(BinOp::Eq, Expr::Int(1), Expr::Int(1)),
                bin(BinOp::Eq, Expr::Int(2), Expr::Int(2))
            ),
            bin(BinOp::Eq, Expr::Int(3), Expr::Int(3))
        )
    );
    // Parentheses override.
    assert_eq!(
        strip(&p("(true || false) && !!null")),
        bin(
            BinOp::And,
            bin(BinOp::Or, Expr::Bool(true), Expr::Bool(false)),
            Expr::Not(Box::new(Expr::Not(Box::new(Expr::Null))))
        )
    );
    for (src, op) in [
        ("1 == 2", BinOp::Eq),
        ("1 != 2", BinOp::Ne),
        ("1 < 2", BinOp::Lt),
        ("1 <= 2", BinOp::Le),
        ("1 > 2", BinOp::Gt),
        ("1 >= 2", BinOp::Ge),
    ] {
        assert_eq!(p(src), bin(op, Expr::Int(1), Expr::Int(2)), "{src}");
    }
}

#[test]
fn in_with_lists() {
    assert_eq!(
        strip(&p("actor.role in ['admin', \"coordinator\"]")),
        bin(
            BinOp::In,
            path(Root::Actor, &["role"], 0..0),
            Expr::List(vec![
                Expr::Str("admin".into()),
                Expr::Str("coordinator".into())
            ])
        )
    );
    assert_eq!(
        p("1 in []"),
        bin(BinOp::In, Expr::Int(1), Expr::List(vec![]))
    );
    assert_eq!(
        p("1 in [1, 2,]"),
        bin(
            BinOp::In,
            Expr::Int(1),
            Expr::List(vec![Expr::Int(1), Expr::Int(2)])
        )
    );
    assert_eq!(
        strip(&p("record.id in actor.friend_ids && true")),
        bin(
            BinOp::And,
            bin(
                BinOp::In,
                path(Root::Record, &["id"], 0..0),
                path(Root::Actor, &["friend_ids"], 0..0)
            ),
            Expr::Bool(true)
        )
    );
}

#[test]
fn errors_carry_positions_and_hints() {
    let e = err("actor.role = 'admin'");
    assert_eq!(
        (e.message.as_str(), e.span.clone()),
        ("`=` is not an operator", 11..12)
    );
    assert_eq!(e.help.as_deref(), Some("use `==` to compare"));

    let e = err("actor != null and true");
    assert_eq!(e.span, 14..17);
    assert_eq!(e.help.as_deref(), Some("use `&&` for and"));

    let e = err("actor & record.x");
    assert_eq!(
        (e.span.clone(), e.help.as_deref()),
        (6..7, Some("use `&&` for and"))
    );

    let e = err("'unterminated");
    assert_eq!(
        (e.message.as_str(), e.span.clone()),
        ("unterminated string", 0..13)
    );

    let e = err("record.");
    assert_eq!(e.span, 7..7);
    assert!(e.message.contains("expected a field name"), "{}", e.message);

    let e = err("(actor == null");
    assert_eq!(e.span, 14..14);
    assert!(e.message.contains("expected `)`"), "{}", e.message);

    let e = err("1 < 2 < 3");
    assert_eq!(e.span, 6..7);
    assert!(e.message.contains("can't be chained"), "{}", e.message);

    let e = err("actr.id == null");
    assert_eq!(
        (e.message.as_str(), e.span.clone()),
        ("unknown name `actr`", 0..4)
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `actor`?"));

    let e = err("admin == actor.role");
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("strings need quotes"))
    );

    let e = err("'a\\q'");
    assert_eq!(e.span, 2..4);

    let e = err("   ");
    assert_eq!(e.message, "empty policy expression");

    let e = err("99999999999999999999");
    assert!(e.message.contains("out of range"));

    let e = err("[1, 2");
    assert_eq!(e.span, 5..5);

    let e = err("actor == ]");
    assert!(e.message.contains("expected a value"), "{}", e.message);

    let e = err("€");
    assert_eq!(
        (e.message.as_str(), e.span.clone()),
        ("unexpected character `€`", 0..3)
    );

    let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    assert!(err(&deep).message.contains("nested too deeply"));
    let nots = format!("{}true", "!".repeat(200));
    assert!(err(&nots).message.contains("nested too deeply"));
}

#[test]
fn printing() {
    for src in [
        "actor != null",
        "record.is_public || actor.id == record.uploader_id",
        "actor.id == record.uploader_id || actor.role == 'admin'",
        "(true || false) && null",
        "!(actor == null)",
        "actor.role in ['admin', 'coordinator']",
        "'it\\'s' == \"x\"",
        "-1.5 < 2",
    ] {
        let e = p(src);
        let printed = e.to_string();
        assert_eq!(strip(&p(&printed)), strip(&e), "{src} printed as {printed}");
    }
    assert_eq!(p("((record.a_b))").to_string(), "record.a_b");
    assert_eq!(p("(1 == 1) == true").to_string(), "(1 == 1) == true");
    assert_eq!(p("1 || (2 || 3)").to_string(), "1 || (2 || 3)");
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let field = "[a-z][a-z0-9_]{0,6}";
    let leaf = prop_oneof![
        Just(Expr::Null),
        any::<bool>().prop_map(Expr::Bool),
        any::<i64>().prop_map(Expr::Int),
        (-1.0e12f64..1.0e12).prop_map(Expr::Float),
        "[ -~]{0,8}".prop_map(Expr::Str),
        (
            prop_oneof![Just(Root::Actor), Just(Root::Record)],
            prop::collection::vec(field, 0..3)
        )
            .prop_map(|(root, fields)| Expr::Path(Path {
                root,
                fields,
                span: 0..0
            })),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let cmp = prop_oneof![
            Just(BinOp::Eq),
            Just(BinOp::Ne),
            Just(BinOp::Lt),
            Just(BinOp::Le),
            Just(BinOp::Gt),
            Just(BinOp::Ge),
            Just(BinOp::In),
        ];
        let logic = prop_oneof![Just(BinOp::And), Just(BinOp::Or)];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::List),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (cmp, inner.clone(), inner.clone()).prop_map(|(op, l, r)| bin(op, l, r)),
            (logic, inner.clone(), inner).prop_map(|(op, l, r)| bin(op, l, r)),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(s in ".{0,64}") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_policy_like_text(s in r#"(actor|record|\.|[a-z_]{1,4}|==|!=|<=?|>=?|&&|\|\||!|\(|\)|\[|\]|,|'|"|\\|-?[0-9]{1,3}(\.[0-9])?|in|null|true| ){0,24}"#) {
        if let Err(e) = parse(&s) {
            prop_assert!(e.span.start <= e.span.end && e.span.end <= s.len());
            prop_assert!(s.is_char_boundary(e.span.start) && s.is_char_boundary(e.span.end));
        }
    }

    #[test]
    fn printing_then_parsing_round_trips(e in arb_expr()) {
        let printed = e.to_string();
        let parsed = parse(&printed);
        prop_assert!(parsed.is_ok(), "{printed:?} failed: {parsed:?}");
        if let Ok(parsed) = parsed {
            prop_assert_eq!(strip(&parsed), strip(&e), "printed as {:?}", printed);
        }
    }
}
