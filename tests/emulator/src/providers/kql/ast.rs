//! A parsed query: a table, then tabular operators, with scalar expressions inside.

use serde_json::Value;

/// `Table | stage | stage …`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// The table named first (`resources`).
    pub(super) table: String,
    pub(super) stages: Vec<Stage>,
}

/// One tabular operator.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stage {
    Where(Expr),
    Project(Vec<NamedExpr>),
    Extend(Vec<NamedExpr>),
    Order(Vec<SortKey>),
    Limit(usize),
    MvExpand(MvExpand),
    Join(Box<Join>),
}

/// `name = expr` (the name is derived from a path when not given).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NamedExpr {
    pub name: String,
    pub expr: Expr,
}

/// A key of `order by`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    /// `nulls first`/`nulls last`; KQL's default is first when ascending, last when
    /// descending.
    pub nulls_first: bool,
}

/// How `mv-expand` expands a property bag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BagExpansion {
    /// Each entry becomes a one-entry bag `{key: value}` (the default).
    Bag,
    /// Each entry becomes `[key, value]`.
    Array,
}

/// `mv-expand [kind=…] [with_itemindex=…] [Name =] Expression, … [limit N]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MvExpand {
    pub bag_expansion: BagExpansion,
    pub item_index: Option<String>,
    pub items: Vec<NamedExpr>,
    pub limit: Option<usize>,
}

/// The join flavours Resource Graph supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinKind {
    /// KQL's default: the left side deduplicated on the key, then an inner join.
    InnerUnique,
    Inner,
    LeftOuter,
    FullOuter,
}

/// `join [kind=…] (query) on key, $left.a == $right.b, …`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Join {
    pub kind: JoinKind,
    pub right: Query,
    /// Pairs of (left column, right column).
    pub on: Vec<(String, String)>,
}

/// A scalar expression.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Literal(Value),
    Column(String),
    /// `value.field` or `value['field']`.
    Member(Box<Expr>, String),
    /// `value[0]` (negative counts from the end, as in KQL).
    Index(Box<Expr>, i64),
    Call(Function, Vec<Expr>),
    Compare(Box<Expr>, Operator, Box<Expr>),
    /// `value in (…)`, `in~`, `!in`, `!in~`.
    In {
        value: Box<Expr>,
        caseless: bool,
        negated: bool,
        list: Vec<Expr>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// The scalar functions implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    ToString,
    ToLower,
    ToUpper,
    StrCat,
    Iff,
    Case,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Not,
}

impl Function {
    /// The function named `name` (KQL names are case-sensitive), if implemented.
    pub(super) fn named(name: &str) -> Option<Function> {
        Some(match name {
            "tostring" => Self::ToString,
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "strcat" => Self::StrCat,
            "iff" | "iif" => Self::Iff,
            "case" => Self::Case,
            "isempty" => Self::IsEmpty,
            "isnotempty" => Self::IsNotEmpty,
            "isnull" => Self::IsNull,
            "isnotnull" => Self::IsNotNull,
            "not" => Self::Not,
            _ => return None,
        })
    }

    /// Whether `count` arguments suit the function.
    pub(super) fn takes(self, count: usize) -> bool {
        match self {
            Self::StrCat => count >= 1,
            Self::Iff => count == 3,
            Self::Case => count >= 3 && count % 2 == 1,
            _ => count == 1,
        }
    }
}

/// The binary comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operator {
    Equal,
    EqualCaseless,
    NotEqual,
    NotEqualCaseless,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Contains,
    NotContains,
    ContainsCaseSensitive,
    NotContainsCaseSensitive,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Has,
    NotHas,
}
