//! Scalar expressions: bound to the columns of the table they run on, then evaluated row
//! by row without copying what they only look at.
//!
//! KQL's semantics where they matter to a client: `==` is case-sensitive and `=~` is not;
//! `contains`, `startswith`, `endswith` and `has` ignore case (`contains_cs` does not);
//! `has` matches whole terms; `tostring`/`tolower`/`toupper` of nothing is `""`, as is
//! every string function's; `isempty` is true for null and `""`; a predicate that is not
//! `true` (null included) counts as false.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{Expr, Function, Operator};
use super::{Cell, ColumnType, QueryError, Schema};

/// An expression whose column names are resolved to positions.
#[derive(Debug, Clone)]
pub(super) enum Bound {
    Literal(Value),
    Column(usize),
    Member(Box<Bound>, String),
    Index(Box<Bound>, i64),
    Call(Function, Vec<Bound>),
    Compare(Box<Bound>, Operator, Box<Bound>),
    In {
        value: Box<Bound>,
        caseless: bool,
        negated: bool,
        list: Vec<Bound>,
    },
    And(Box<Bound>, Box<Bound>),
    Or(Box<Bound>, Box<Bound>),
}

/// `FailedToResolveColumn`, as Resource Graph names an unknown column.
pub(super) fn unknown_column(name: &str, schema: &Schema) -> QueryError {
    QueryError {
        code: "FailedToResolveColumn",
        message: format!(
            "Failed to resolve scalar expression named '{name}'. The columns are: {}.",
            schema
                .iter()
                .map(|column| column.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Resolves the column names of `expr` against `schema` (column names are
/// case-sensitive, as in KQL).
pub(super) fn bind(expr: &Expr, schema: &Schema) -> Result<Bound, QueryError> {
    let bind_all = |items: &[Expr]| -> Result<Vec<Bound>, QueryError> {
        items.iter().map(|item| bind(item, schema)).collect()
    };
    Ok(match expr {
        Expr::Literal(value) => Bound::Literal(value.clone()),
        Expr::Column(name) => Bound::Column(
            schema
                .iter()
                .position(|column| column.name == *name)
                .ok_or_else(|| unknown_column(name, schema))?,
        ),
        Expr::Member(base, field) => Bound::Member(Box::new(bind(base, schema)?), field.clone()),
        Expr::Index(base, index) => Bound::Index(Box::new(bind(base, schema)?), *index),
        Expr::Call(function, arguments) => Bound::Call(*function, bind_all(arguments)?),
        Expr::Compare(left, operator, right) => Bound::Compare(
            Box::new(bind(left, schema)?),
            *operator,
            Box::new(bind(right, schema)?),
        ),
        Expr::In {
            value,
            caseless,
            negated,
            list,
        } => Bound::In {
            value: Box::new(bind(value, schema)?),
            caseless: *caseless,
            negated: *negated,
            list: bind_all(list)?,
        },
        Expr::And(left, right) => Bound::And(
            Box::new(bind(left, schema)?),
            Box::new(bind(right, schema)?),
        ),
        Expr::Or(left, right) => Bound::Or(
            Box::new(bind(left, schema)?),
            Box::new(bind(right, schema)?),
        ),
    })
}

/// The type of a bound expression's values, for what an outer join puts in the columns
/// of a row that found no match (`""` for strings, null otherwise, as in KQL).
pub(super) fn type_of(expr: &Bound, schema: &Schema) -> ColumnType {
    match expr {
        Bound::Literal(Value::String(_)) => ColumnType::String,
        Bound::Literal(Value::Bool(_)) => ColumnType::Bool,
        Bound::Literal(Value::Number(_)) => ColumnType::Number,
        Bound::Literal(_) | Bound::Member(..) | Bound::Index(..) => ColumnType::Dynamic,
        Bound::Column(index) => schema
            .get(*index)
            .map_or(ColumnType::Dynamic, |column| column.kind),
        Bound::Call(function, arguments) => match function {
            Function::ToString | Function::ToLower | Function::ToUpper | Function::StrCat => {
                ColumnType::String
            }
            Function::Iff => arguments
                .get(1)
                .map_or(ColumnType::Dynamic, |then| type_of(then, schema)),
            Function::Case => arguments
                .get(1)
                .map_or(ColumnType::Dynamic, |first| type_of(first, schema)),
            Function::IsEmpty
            | Function::IsNotEmpty
            | Function::IsNull
            | Function::IsNotNull
            | Function::Not => ColumnType::Bool,
        },
        Bound::Compare(..) | Bound::In { .. } | Bound::And(..) | Bound::Or(..) => ColumnType::Bool,
    }
}

static NULL: Value = Value::Null;

/// Evaluates `expr` on a row; borrows from the row where it can.
pub(super) fn evaluate<'a>(expr: &'a Bound, row: &'a [Cell]) -> Cow<'a, Value> {
    match expr {
        Bound::Literal(value) => Cow::Borrowed(value),
        Bound::Column(index) => Cow::Borrowed(row.get(*index).map_or(&NULL, |cell| &**cell)),
        Bound::Member(base, field) => match evaluate(base, row) {
            Cow::Borrowed(value) => Cow::Borrowed(value.get(field).unwrap_or(&NULL)),
            Cow::Owned(value) => Cow::Owned(value.get(field).cloned().unwrap_or(Value::Null)),
        },
        Bound::Index(base, index) => {
            let pick = |value: &'a Value| -> Option<&'a Value> {
                let items = value.as_array()?;
                let position = if *index < 0 {
                    items
                        .len()
                        .checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(*index).ok()?
                };
                items.get(position)
            };
            match evaluate(base, row) {
                Cow::Borrowed(value) => Cow::Borrowed(pick(value).unwrap_or(&NULL)),
                Cow::Owned(value) => {
                    let picked = value.as_array().and_then(|items| {
                        let position = if *index < 0 {
                            items
                                .len()
                                .checked_sub(usize::try_from(index.unsigned_abs()).ok()?)?
                        } else {
                            usize::try_from(*index).ok()?
                        };
                        items.get(position).cloned()
                    });
                    Cow::Owned(picked.unwrap_or(Value::Null))
                }
            }
        }
        Bound::Call(function, arguments) => Cow::Owned(call(*function, arguments, row)),
        Bound::Compare(left, operator, right) => Cow::Owned(Value::Bool(compare(
            &evaluate(left, row),
            *operator,
            &evaluate(right, row),
        ))),
        Bound::In {
            value,
            caseless,
            negated,
            list,
        } => {
            let value = evaluate(value, row);
            let found = list
                .iter()
                .any(|item| equal(&value, &evaluate(item, row), *caseless));
            Cow::Owned(Value::Bool(found != *negated))
        }
        Bound::And(left, right) => Cow::Owned(Value::Bool(
            truthy(&evaluate(left, row)) && truthy(&evaluate(right, row)),
        )),
        Bound::Or(left, right) => Cow::Owned(Value::Bool(
            truthy(&evaluate(left, row)) || truthy(&evaluate(right, row)),
        )),
    }
}

/// Whether a predicate's value lets a row through: only `true` does.
pub(super) fn truthy(value: &Value) -> bool {
    value.as_bool() == Some(true)
}

fn call(function: Function, arguments: &[Bound], row: &[Cell]) -> Value {
    let argument = |index: usize| -> Cow<'_, Value> {
        arguments
            .get(index)
            .map_or(Cow::Borrowed(&NULL), |argument| evaluate(argument, row))
    };
    match function {
        Function::ToString => Value::String(text_of(&argument(0)).unwrap_or_default()),
        Function::ToLower => {
            Value::String(text_of(&argument(0)).unwrap_or_default().to_lowercase())
        }
        Function::ToUpper => {
            Value::String(text_of(&argument(0)).unwrap_or_default().to_uppercase())
        }
        Function::StrCat => Value::String(
            arguments
                .iter()
                .map(|argument| text_of(&evaluate(argument, row)).unwrap_or_default())
                .collect(),
        ),
        Function::Iff => {
            if truthy(&argument(0)) {
                argument(1).into_owned()
            } else {
                argument(2).into_owned()
            }
        }
        Function::Case => {
            let pairs = arguments.len() / 2;
            (0..pairs)
                .find(|pair| truthy(&argument(pair * 2)))
                .map_or_else(
                    || argument(arguments.len() - 1).into_owned(),
                    |pair| argument(pair * 2 + 1).into_owned(),
                )
        }
        Function::IsEmpty => Value::Bool(is_empty(&argument(0))),
        Function::IsNotEmpty => Value::Bool(!is_empty(&argument(0))),
        Function::IsNull => Value::Bool(argument(0).is_null()),
        Function::IsNotNull => Value::Bool(!argument(0).is_null()),
        Function::Not => Value::Bool(!truthy(&argument(0))),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

/// The string form KQL compares and `tostring` gives: strings as they are, other
/// scalars and dynamic values as JSON; `None` for null.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn has_term(haystack: &str, needle: &str) -> bool {
    let haystack = haystack.to_lowercase();
    let needle = needle.to_lowercase();
    if needle.is_empty() {
        return true;
    }
    haystack.match_indices(&needle).any(|(start, _)| {
        let before = haystack[..start].chars().next_back();
        let after = haystack[start + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Equality as `==` (or `=~` when `caseless`) sees it; null equals nothing.
pub(super) fn equal(left: &Value, right: &Value, caseless: bool) -> bool {
    if let (Some(left), Some(right)) = (left.as_f64(), right.as_f64()) {
        return left == right;
    }
    match (left, right) {
        (Value::String(left), Value::String(right)) if caseless => {
            left.to_lowercase() == right.to_lowercase()
        }
        (Value::String(left), Value::String(right)) => left == right,
        _ => match (text_of(left), text_of(right)) {
            (Some(left), Some(right)) if caseless => left.to_lowercase() == right.to_lowercase(),
            (Some(left), Some(right)) => left == right,
            _ => false,
        },
    }
}

fn compare(left: &Value, operator: Operator, right: &Value) -> bool {
    let ordering = || {
        if left.is_null() || right.is_null() {
            return None;
        }
        match (left.as_f64(), right.as_f64()) {
            (Some(left), Some(right)) => left.partial_cmp(&right),
            _ => Some(text_of(left).cmp(&text_of(right))),
        }
    };
    let text = text_of(left).unwrap_or_default();
    let wanted = text_of(right).unwrap_or_default();
    let lower = || text.to_lowercase();
    let wanted_lower = || wanted.to_lowercase();
    match operator {
        Operator::Equal => equal(left, right, false),
        Operator::EqualCaseless => equal(left, right, true),
        Operator::NotEqual => !equal(left, right, false),
        Operator::NotEqualCaseless => !equal(left, right, true),
        Operator::Less => ordering() == Some(Ordering::Less),
        Operator::LessOrEqual => matches!(ordering(), Some(Ordering::Less | Ordering::Equal)),
        Operator::Greater => ordering() == Some(Ordering::Greater),
        Operator::GreaterOrEqual => {
            matches!(ordering(), Some(Ordering::Greater | Ordering::Equal))
        }
        Operator::Contains => lower().contains(&wanted_lower()),
        Operator::NotContains => !lower().contains(&wanted_lower()),
        Operator::ContainsCaseSensitive => text.contains(&wanted),
        Operator::NotContainsCaseSensitive => !text.contains(&wanted),
        Operator::StartsWith => lower().starts_with(&wanted_lower()),
        Operator::NotStartsWith => !lower().starts_with(&wanted_lower()),
        Operator::EndsWith => lower().ends_with(&wanted_lower()),
        Operator::NotEndsWith => !lower().ends_with(&wanted_lower()),
        Operator::Has => has_term(&text, &wanted),
        Operator::NotHas => !has_term(&text, &wanted),
    }
}

/// The order `order by` sorts in: nulls apart (the caller places them), numbers as
/// numbers, everything else by its string form.
pub(super) fn order(left: &Value, right: &Value) -> Ordering {
    match (left.as_f64(), right.as_f64()) {
        (Some(left), Some(right)) => left.partial_cmp(&right).unwrap_or(Ordering::Equal),
        _ => text_of(left).cmp(&text_of(right)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::{ColumnDef, ColumnType};
    use super::*;

    fn schema() -> Schema {
        vec![
            ColumnDef {
                name: "name".to_owned(),
                kind: ColumnType::String,
            },
            ColumnDef {
                name: "properties".to_owned(),
                kind: ColumnType::Dynamic,
            },
        ]
    }

    fn value_of(text: &str) -> Value {
        let row: Vec<Cell> = vec![
            Arc::new(json!("Web-01")),
            Arc::new(json!({ "list": [1, 2, 3], "code": "PowerState/running", "none": null })),
        ];
        let query = match super::super::parse(&format!("T | extend x = {text}")) {
            Ok(query) => query,
            Err(error) => panic!("{text}: {error:?}"),
        };
        let super::super::ast::Stage::Extend(named) = &query.stages[0] else {
            panic!();
        };
        let bound = match bind(&named[0].expr, &schema()) {
            Ok(bound) => bound,
            Err(error) => panic!("{text}: {error:?}"),
        };
        evaluate(&bound, &row).into_owned()
    }

    #[test]
    fn paths_reach_into_dynamic_values() {
        assert_eq!(value_of("properties.list[1]"), json!(2));
        assert_eq!(value_of("properties.list[-1]"), json!(3));
        assert_eq!(value_of("properties['code']"), json!("PowerState/running"));
        assert_eq!(value_of("properties.missing.deeper"), Value::Null);
    }

    #[test]
    fn string_functions_treat_nothing_as_empty() {
        assert_eq!(value_of("tolower(name)"), json!("web-01"));
        assert_eq!(
            value_of("toupper(properties.code)"),
            json!("POWERSTATE/RUNNING")
        );
        assert_eq!(value_of("tostring(properties.none)"), json!(""));
        assert_eq!(value_of("tostring(properties.list)"), json!("[1,2,3]"));
        assert_eq!(
            value_of("strcat(name, '/', properties.missing, 7)"),
            json!("Web-01/7")
        );
    }

    #[test]
    fn iff_and_case_choose_by_predicate() {
        assert_eq!(value_of("iff(name =~ 'WEB-01', 'yes', 'no')"), json!("yes"));
        assert_eq!(value_of("iif(name == 'WEB-01', 'yes', 'no')"), json!("no"));
        assert_eq!(value_of("iff(properties.none, 'yes', 'no')"), json!("no"));
        assert_eq!(
            value_of(
                "case(properties.code == 'PowerState/deallocated', 'stopped', properties.code has 'running', 'running', 'other')"
            ),
            json!("running")
        );
        assert_eq!(value_of("case(false, 1, 2)"), json!(2));
    }

    #[test]
    fn emptiness_and_comparisons() {
        assert_eq!(value_of("isempty(properties.none)"), json!(true));
        assert_eq!(value_of("isnotempty(name)"), json!(true));
        assert_eq!(value_of("isnull(properties.code)"), json!(false));
        assert_eq!(value_of("not(name has 'web')"), json!(false));
        assert_eq!(value_of("properties.list[2] > 2"), json!(true));
        assert_eq!(value_of("properties.none < 2"), json!(false));
        assert_eq!(value_of("name in~ ('web-01', 'x')"), json!(true));
        assert_eq!(value_of("name !in ('web-01')"), json!(true));
        assert_eq!(value_of("name contains_cs 'web'"), json!(false));
        assert_eq!(value_of("name !contains_cs 'web'"), json!(true));
    }

    #[test]
    fn unknown_columns_are_named() {
        let query = super::super::parse("T | extend x = nothing.here");
        let Ok(query) = query else {
            panic!();
        };
        let super::super::ast::Stage::Extend(named) = &query.stages[0] else {
            panic!();
        };
        let error = bind(&named[0].expr, &schema());
        assert!(
            matches!(&error, Err(QueryError { code: "FailedToResolveColumn", message }) if message.contains("'nothing'")),
            "{error:?}"
        );
    }
}
