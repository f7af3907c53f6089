//! The subset of KQL a client needs to find VMs in Azure Resource Graph.
//!
//! `Resources | where … | project … | order by … | limit N`, with conditions joined by
//! `and`/`or` (and parentheses), the comparison operators `==`, `=~`, `!=`, `!~`,
//! `in`, `in~`, `!in`, `!in~`, `contains`, `!contains`, `contains_cs`, `startswith`,
//! `!startswith`, `endswith`, `!endswith`, `has`, `!has`, the functions `isempty`,
//! `isnotempty`, `isnull`, `isnotnull` in conditions and `tostring`, `tolower`, `toupper`
//! in expressions, and dotted or bracketed paths (`properties.storageProfile.osDisk.osType`,
//! `properties['vmId']`).
//!
//! Anything else is refused with an error, never answered approximately: a client that
//! works against the emulator must not be relying on a query that means something else
//! on Azure. Column names are case-sensitive and string comparisons follow KQL (`==` is
//! case-sensitive, `=~` is not); `order by` sorts descending unless told otherwise, as
//! KQL does.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Why a query was refused: ARG's detail `code` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn parser_failure(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "ParserFailure",
        message: message.into(),
    }
}

fn unsupported(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "UnsupportedQuery",
        message: format!(
            "{} (the emulator implements a subset of KQL; see docs/world-file.md)",
            message.into()
        ),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    String(String),
    Number(f64),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c.is_whitespace() {
            index += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = index;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || chars[index] == '_')
            {
                index += 1;
            }
            tokens.push(Token::Identifier(chars[start..index].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = index;
            while index < chars.len() && (chars[index].is_ascii_digit() || chars[index] == '.') {
                index += 1;
            }
            let literal: String = chars[start..index].iter().collect();
            let number = literal
                .parse()
                .map_err(|_| parser_failure(format!("'{literal}' is not a number")))?;
            tokens.push(Token::Number(number));
            continue;
        }
        let verbatim = c == '@' && matches!(chars.get(index + 1), Some('\'' | '"'));
        if c == '\'' || c == '"' || verbatim {
            if verbatim {
                index += 1;
            }
            let quote = chars[index];
            index += 1;
            let mut value = String::new();
            loop {
                match chars.get(index) {
                    None => return Err(parser_failure("a string literal is not terminated")),
                    Some(&ch) if ch == quote => {
                        index += 1;
                        break;
                    }
                    Some('\\') if !verbatim => {
                        let escaped = chars
                            .get(index + 1)
                            .ok_or_else(|| parser_failure("a string literal is not terminated"))?;
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
                        index += 2;
                    }
                    Some(&ch) => {
                        value.push(ch);
                        index += 1;
                    }
                }
            }
            tokens.push(Token::String(value));
            continue;
        }
        let two: String = chars[index..chars.len().min(index + 2)].iter().collect();
        let symbol = match two.as_str() {
            "==" => Some("=="),
            "=~" => Some("=~"),
            "!=" => Some("!="),
            "!~" => Some("!~"),
            _ => None,
        };
        if let Some(symbol) = symbol {
            tokens.push(Token::Symbol(symbol));
            index += 2;
            continue;
        }
        let symbol = match c {
            '|' => "|",
            ',' => ",",
            '(' => "(",
            ')' => ")",
            '.' => ".",
            '[' => "[",
            ']' => "]",
            '=' => "=",
            '~' => "~",
            '!' => "!",
            '-' => "-",
            other => {
                return Err(parser_failure(format!("unexpected character '{other}'")));
            }
        };
        tokens.push(Token::Symbol(symbol));
        index += 1;
    }
    Ok(tokens)
}

/// A step of a path into a row.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A scalar expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Path(Vec<Step>),
    Call(Function, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    String,
    Lower,
    Upper,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Equal,
    EqualCaseless,
    NotEqual,
    NotEqualCaseless,
    In,
    InCaseless,
    NotIn,
    NotInCaseless,
    Contains,
    NotContains,
    ContainsCaseSensitive,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Has,
    NotHas,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    Empty,
    NotEmpty,
    Null,
    NotNull,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare(Expr, Operator, Vec<Value>),
    Test(Test, Expr),
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Where(Condition),
    Project(Vec<Column>),
    Order(Vec<(Expr, bool)>),
    Limit(usize),
}

/// Rows of a table: column name → value.
pub(crate) type Rows = Vec<Map<String, Value>>;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    stages: Vec<Stage>,
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn at_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol)
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Identifier(w)) if w == word)
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        if self.at_symbol(symbol) {
            self.position += 1;
            Ok(())
        } else {
            Err(parser_failure(format!(
                "expected '{symbol}' but found {}",
                describe(self.peek())
            )))
        }
    }

    fn identifier(&mut self) -> Result<String, QueryError> {
        match self.next() {
            Some(Token::Identifier(name)) => Ok(name),
            other => Err(parser_failure(format!(
                "expected a name but found {}",
                describe(other.as_ref())
            ))),
        }
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        let table = self.identifier()?;
        if !table.eq_ignore_ascii_case("resources") {
            return Err(unsupported(format!(
                "table '{table}' is not available; only 'Resources' is"
            )));
        }
        let mut stages = Vec::new();
        while self.position < self.tokens.len() {
            self.expect_symbol("|")?;
            let operator = self.identifier()?;
            let stage = match operator.as_str() {
                "where" => Stage::Where(self.condition()?),
                "project" => {
                    if self.at_symbol("-") {
                        return Err(unsupported("'project-…' operators are not supported"));
                    }
                    Stage::Project(self.columns()?)
                }
                "order" | "sort" => {
                    if self.identifier()? != "by" {
                        return Err(parser_failure(format!("expected 'by' after '{operator}'")));
                    }
                    Stage::Order(self.sort_keys()?)
                }
                "limit" | "take" => match self.next() {
                    Some(Token::Number(number)) if number >= 0.0 && number.fract() == 0.0 =>
                    {
                        #[allow(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "checked non-negative and whole; saturates beyond usize"
                        )]
                        Stage::Limit(number as usize)
                    }
                    other => {
                        return Err(parser_failure(format!(
                            "expected a row count after '{operator}' but found {}",
                            describe(other.as_ref())
                        )));
                    }
                },
                other => {
                    return Err(unsupported(format!(
                        "the operator '{other}' is not supported"
                    )));
                }
            };
            stages.push(stage);
        }
        Ok(Query { stages })
    }

    fn columns(&mut self) -> Result<Vec<Column>, QueryError> {
        let mut columns = Vec::new();
        loop {
            let alias = match (
                self.tokens.get(self.position),
                self.tokens.get(self.position + 1),
            ) {
                (Some(Token::Identifier(name)), Some(Token::Symbol("="))) => {
                    let name = name.clone();
                    self.position += 2;
                    Some(name)
                }
                _ => None,
            };
            let expr = self.expression()?;
            let name = match (alias, &expr) {
                (Some(alias), _) => alias,
                (None, Expr::Path(steps)) => default_column_name(steps),
                (None, Expr::Call(..)) => {
                    return Err(unsupported(
                        "a projected function call needs a name (name = tostring(…))",
                    ));
                }
            };
            columns.push(Column { name, expr });
            if self.at_symbol(",") {
                self.position += 1;
            } else {
                return Ok(columns);
            }
        }
    }

    fn sort_keys(&mut self) -> Result<Vec<(Expr, bool)>, QueryError> {
        let mut keys = Vec::new();
        loop {
            let expr = self.expression()?;
            let descending = if self.at_word("asc") {
                self.position += 1;
                false
            } else if self.at_word("desc") {
                self.position += 1;
                true
            } else {
                true
            };
            keys.push((expr, descending));
            if self.at_symbol(",") {
                self.position += 1;
            } else {
                return Ok(keys);
            }
        }
    }

    fn expression(&mut self) -> Result<Expr, QueryError> {
        let name = self.identifier()?;
        let function = match name.as_str() {
            "tostring" => Some(Function::String),
            "tolower" => Some(Function::Lower),
            "toupper" => Some(Function::Upper),
            _ => None,
        };
        if self.at_symbol("(") {
            let Some(function) = function else {
                return Err(unsupported(format!(
                    "the function '{name}' is not supported"
                )));
            };
            self.position += 1;
            let argument = self.expression()?;
            self.expect_symbol(")")?;
            return Ok(Expr::Call(function, Box::new(argument)));
        }
        let mut steps = vec![Step::Field(name)];
        loop {
            if self.at_symbol(".") {
                self.position += 1;
                steps.push(Step::Field(self.identifier()?));
            } else if self.at_symbol("[") {
                self.position += 1;
                match self.next() {
                    Some(Token::String(field)) => steps.push(Step::Field(field)),
                    Some(Token::Number(number)) if number >= 0.0 && number.fract() == 0.0 => {
                        #[allow(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "checked non-negative and whole"
                        )]
                        steps.push(Step::Index(number as usize));
                    }
                    other => {
                        return Err(parser_failure(format!(
                            "expected a field name or index in brackets but found {}",
                            describe(other.as_ref())
                        )));
                    }
                }
                self.expect_symbol("]")?;
            } else {
                return Ok(Expr::Path(steps));
            }
        }
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let mut left = self.conjunction()?;
        while self.at_word("or") {
            self.position += 1;
            let right = self.conjunction()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Condition, QueryError> {
        let mut left = self.primary()?;
        while self.at_word("and") {
            self.position += 1;
            let right = self.primary()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Condition, QueryError> {
        if self.at_symbol("(") {
            self.position += 1;
            let inner = self.condition()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        let test = match self.peek() {
            Some(Token::Identifier(word)) => match word.as_str() {
                "isempty" => Some(Test::Empty),
                "isnotempty" => Some(Test::NotEmpty),
                "isnull" => Some(Test::Null),
                "isnotnull" => Some(Test::NotNull),
                "not" => {
                    self.position += 1;
                    self.expect_symbol("(")?;
                    let inner = self.condition()?;
                    self.expect_symbol(")")?;
                    return Ok(Condition::Not(Box::new(inner)));
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(test) = test {
            self.position += 1;
            self.expect_symbol("(")?;
            let expr = self.expression()?;
            self.expect_symbol(")")?;
            return Ok(Condition::Test(test, expr));
        }
        let left = self.expression()?;
        let operator = self.operator()?;
        let values = match operator {
            Operator::In | Operator::InCaseless | Operator::NotIn | Operator::NotInCaseless => {
                self.expect_symbol("(")?;
                let mut values = vec![self.literal()?];
                while self.at_symbol(",") {
                    self.position += 1;
                    values.push(self.literal()?);
                }
                self.expect_symbol(")")?;
                values
            }
            _ => vec![self.literal()?],
        };
        Ok(Condition::Compare(left, operator, values))
    }

    fn operator(&mut self) -> Result<Operator, QueryError> {
        let negated = if self.at_symbol("!") {
            self.position += 1;
            true
        } else {
            false
        };
        let token = self.next();
        let caseless = |parser: &mut Self| {
            if parser.at_symbol("~") {
                parser.position += 1;
                true
            } else {
                false
            }
        };
        let operator = match (&token, negated) {
            (Some(Token::Symbol("==")), false) => Operator::Equal,
            (Some(Token::Symbol("=~")), false) => Operator::EqualCaseless,
            (Some(Token::Symbol("!=")), false) => Operator::NotEqual,
            (Some(Token::Symbol("!~")), false) => Operator::NotEqualCaseless,
            (Some(Token::Identifier(word)), _) => match (word.as_str(), negated) {
                ("in", false) => {
                    if caseless(self) {
                        Operator::InCaseless
                    } else {
                        Operator::In
                    }
                }
                ("in", true) => {
                    if caseless(self) {
                        Operator::NotInCaseless
                    } else {
                        Operator::NotIn
                    }
                }
                ("contains", false) => Operator::Contains,
                ("contains", true) => Operator::NotContains,
                ("contains_cs", false) => Operator::ContainsCaseSensitive,
                ("startswith", false) => Operator::StartsWith,
                ("startswith", true) => Operator::NotStartsWith,
                ("endswith", false) => Operator::EndsWith,
                ("endswith", true) => Operator::NotEndsWith,
                ("has", false) => Operator::Has,
                ("has", true) => Operator::NotHas,
                (other, _) => {
                    return Err(unsupported(format!(
                        "the operator '{}{other}' is not supported",
                        if negated { "!" } else { "" }
                    )));
                }
            },
            (other, _) => {
                return Err(parser_failure(format!(
                    "expected a comparison operator but found {}",
                    describe(other.as_ref())
                )));
            }
        };
        Ok(operator)
    }

    fn literal(&mut self) -> Result<Value, QueryError> {
        match self.next() {
            Some(Token::String(text)) => Ok(Value::String(text)),
            Some(Token::Number(number)) => Ok(serde_json::Number::from_f64(number)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            Some(Token::Identifier(word)) if word == "true" || word == "false" => {
                Ok(Value::Bool(word == "true"))
            }
            other => Err(parser_failure(format!(
                "expected a literal value but found {}",
                describe(other.as_ref())
            ))),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".to_owned(),
        Some(Token::Identifier(name)) => format!("'{name}'"),
        Some(Token::String(text)) => format!("the string '{text}'"),
        Some(Token::Number(number)) => format!("the number {number}"),
        Some(Token::Symbol(symbol)) => format!("'{symbol}'"),
    }
}

/// KQL's name for a projected path: its steps joined by `_`.
fn default_column_name(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|step| match step {
            Step::Field(name) => name.clone(),
            Step::Index(index) => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Parses a query of the supported subset.
pub(crate) fn parse(text: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(parser_failure("the query is empty"));
    }
    Parser {
        tokens,
        position: 0,
    }
    .query()
}

/// Rows flowing through the pipeline, with the columns they have.
struct Table {
    columns: Vec<String>,
    rows: Vec<Map<String, Value>>,
}

impl Table {
    fn check(&self, expr: &Expr) -> Result<(), QueryError> {
        match expr {
            Expr::Call(_, inner) => self.check(inner),
            Expr::Path(steps) => match steps.first() {
                Some(Step::Field(head)) if self.columns.contains(head) => Ok(()),
                Some(Step::Field(head)) => Err(QueryError {
                    code: "FailedToResolveColumn",
                    message: format!(
                        "Failed to resolve scalar expression named '{head}'. The columns are: {}.",
                        self.columns.join(", ")
                    ),
                }),
                _ => Err(parser_failure(
                    "an expression must start with a column name",
                )),
            },
        }
    }

    fn check_condition(&self, condition: &Condition) -> Result<(), QueryError> {
        match condition {
            Condition::And(left, right) | Condition::Or(left, right) => {
                self.check_condition(left)?;
                self.check_condition(right)
            }
            Condition::Not(inner) => self.check_condition(inner),
            Condition::Compare(expr, ..) | Condition::Test(_, expr) => self.check(expr),
        }
    }
}

fn evaluate(expr: &Expr, row: &Map<String, Value>) -> Value {
    match expr {
        Expr::Path(steps) => {
            let mut current: Option<&Value> = None;
            for (index, step) in steps.iter().enumerate() {
                current = match (index, step) {
                    (0, Step::Field(name)) => row.get(name),
                    (_, Step::Field(name)) => current.and_then(|value| value.get(name)),
                    (_, Step::Index(position)) => current.and_then(|value| value.get(position)),
                };
            }
            current.cloned().unwrap_or(Value::Null)
        }
        Expr::Call(function, inner) => {
            let value = evaluate(inner, row);
            let text = text_of(&value);
            match (function, text) {
                (_, None) => Value::String(String::new()),
                (Function::String, Some(text)) => Value::String(text),
                (Function::Lower, Some(text)) => Value::String(text.to_lowercase()),
                (Function::Upper, Some(text)) => Value::String(text.to_uppercase()),
            }
        }
    }
}

/// The string form KQL compares: strings as they are, other scalars and objects as JSON.
fn text_of(value: &Value) -> Option<String> {
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

fn equal(left: &Value, right: &Value, caseless: bool) -> bool {
    if let (Some(left), Some(right)) = (left.as_f64(), right.as_f64()) {
        return left == right;
    }
    match (text_of(left), text_of(right)) {
        (Some(left), Some(right)) if caseless => left.to_lowercase() == right.to_lowercase(),
        (Some(left), Some(right)) => left == right,
        _ => false,
    }
}

fn test_condition(condition: &Condition, row: &Map<String, Value>) -> bool {
    match condition {
        Condition::And(left, right) => test_condition(left, row) && test_condition(right, row),
        Condition::Or(left, right) => test_condition(left, row) || test_condition(right, row),
        Condition::Not(inner) => !test_condition(inner, row),
        Condition::Test(test, expr) => {
            let value = evaluate(expr, row);
            let empty = match &value {
                Value::Null => true,
                Value::String(text) => text.is_empty(),
                _ => false,
            };
            match test {
                Test::Empty => empty,
                Test::NotEmpty => !empty,
                Test::Null => value.is_null(),
                Test::NotNull => !value.is_null(),
            }
        }
        Condition::Compare(expr, operator, values) => {
            let left = evaluate(expr, row);
            let first = values.first().cloned().unwrap_or(Value::Null);
            let text = text_of(&left).unwrap_or_default();
            let right = text_of(&first).unwrap_or_default();
            let lower = text.to_lowercase();
            let right_lower = right.to_lowercase();
            match operator {
                Operator::Equal => equal(&left, &first, false),
                Operator::EqualCaseless => equal(&left, &first, true),
                Operator::NotEqual => !equal(&left, &first, false),
                Operator::NotEqualCaseless => !equal(&left, &first, true),
                Operator::In => values.iter().any(|value| equal(&left, value, false)),
                Operator::InCaseless => values.iter().any(|value| equal(&left, value, true)),
                Operator::NotIn => !values.iter().any(|value| equal(&left, value, false)),
                Operator::NotInCaseless => !values.iter().any(|value| equal(&left, value, true)),
                Operator::Contains => lower.contains(&right_lower),
                Operator::NotContains => !lower.contains(&right_lower),
                Operator::ContainsCaseSensitive => text.contains(&right),
                Operator::StartsWith => lower.starts_with(&right_lower),
                Operator::NotStartsWith => !lower.starts_with(&right_lower),
                Operator::EndsWith => lower.ends_with(&right_lower),
                Operator::NotEndsWith => !lower.ends_with(&right_lower),
                Operator::Has => has_term(&text, &right),
                Operator::NotHas => !has_term(&text, &right),
            }
        }
    }
}

fn compare_values(left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => match (left.as_f64(), right.as_f64()) {
            (Some(left), Some(right)) => left.partial_cmp(&right).unwrap_or(Ordering::Equal),
            _ => text_of(left).cmp(&text_of(right)),
        },
    }
}

impl Query {
    /// Runs the query over `rows` (the `Resources` table, whose columns are `columns`).
    /// Returns the result's columns, in order, and its rows.
    pub(crate) fn run(
        &self,
        columns: &[&str],
        rows: Vec<Map<String, Value>>,
    ) -> Result<(Vec<String>, Rows), QueryError> {
        let mut table = Table {
            columns: columns.iter().map(|column| (*column).to_owned()).collect(),
            rows,
        };
        for stage in &self.stages {
            match stage {
                Stage::Where(condition) => {
                    table.check_condition(condition)?;
                    table.rows.retain(|row| test_condition(condition, row));
                }
                Stage::Project(projected) => {
                    for column in projected {
                        table.check(&column.expr)?;
                    }
                    table.rows = table
                        .rows
                        .iter()
                        .map(|row| {
                            projected
                                .iter()
                                .map(|column| (column.name.clone(), evaluate(&column.expr, row)))
                                .collect()
                        })
                        .collect();
                    table.columns = projected.iter().map(|column| column.name.clone()).collect();
                }
                Stage::Order(keys) => {
                    for (expr, _) in keys {
                        table.check(expr)?;
                    }
                    table.rows.sort_by(|left, right| {
                        keys.iter()
                            .map(|(expr, descending)| {
                                let ordering =
                                    compare_values(&evaluate(expr, left), &evaluate(expr, right));
                                if *descending {
                                    ordering.reverse()
                                } else {
                                    ordering
                                }
                            })
                            .find(|ordering| *ordering != Ordering::Equal)
                            .unwrap_or(Ordering::Equal)
                    });
                }
                Stage::Limit(count) => table.rows.truncate(*count),
            }
        }
        Ok((table.columns, table.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COLUMNS: &[&str] = &[
        "id",
        "name",
        "type",
        "location",
        "resourceGroup",
        "properties",
    ];

    fn rows() -> Vec<Map<String, Value>> {
        [
            (
                "api-01",
                "microsoft.compute/virtualmachines",
                "westeurope",
                "rg-web",
                "Linux",
            ),
            (
                "sql-01",
                "microsoft.compute/virtualmachines",
                "northeurope",
                "rg-data",
                "Windows",
            ),
            (
                "api-01-nsg",
                "microsoft.network/networksecuritygroups",
                "westeurope",
                "rg-web",
                "",
            ),
            (
                "Web-01",
                "microsoft.compute/virtualmachines",
                "westeurope",
                "rg-app",
                "Linux",
            ),
        ]
        .into_iter()
        .map(|(name, kind, location, group, os)| {
            let row = json!({
                "id": format!("/subscriptions/s/resourceGroups/{group}/providers/x/{name}"),
                "name": name,
                "type": kind,
                "location": location,
                "resourceGroup": group,
                "properties": { "storageProfile": { "osDisk": { "osType": os } }, "count": 2 }
            });
            row.as_object().cloned().unwrap_or_default()
        })
        .collect()
    }

    fn run(query: &str) -> Result<Vec<Map<String, Value>>, QueryError> {
        Ok(parse(query)?.run(COLUMNS, rows())?.1)
    }

    fn names(result: Result<Vec<Map<String, Value>>, QueryError>) -> Vec<String> {
        match result {
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    row.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect(),
            Err(error) => vec![format!("error: {error:?}")],
        }
    }

    #[test]
    fn filters_by_type_and_name_caselessly() {
        assert_eq!(
            names(run(
                "Resources | where type =~ 'Microsoft.Compute/virtualMachines' and name =~ 'WEB-01'"
            )),
            ["Web-01"]
        );
        assert_eq!(
            names(run("resources | where name == 'web-01'")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn in_lists_and_negations_work() {
        assert_eq!(
            names(run(
                "Resources | where resourceGroup in~ ('RG-WEB', 'rg-data') | where type !~ 'microsoft.network/networksecuritygroups'"
            )),
            ["api-01", "sql-01"]
        );
        assert_eq!(
            names(run("Resources | where location !in ('westeurope')")),
            ["sql-01"]
        );
    }

    #[test]
    fn or_and_parentheses_bind_as_in_kql() {
        assert_eq!(
            names(run(
                "Resources | where (name == 'api-01' or name == 'sql-01') and location == 'westeurope'"
            )),
            ["api-01"]
        );
    }

    #[test]
    fn project_names_paths_with_underscores_and_aliases() {
        let projected = run(
            "Resources | where name == 'sql-01' | project name, properties.storageProfile.osDisk.osType, os = tostring(properties['storageProfile'].osDisk.osType)",
        );
        let Ok(projected) = projected else {
            panic!("{projected:?}");
        };
        assert_eq!(
            Value::Object(projected[0].clone()),
            json!({
                "name": "sql-01",
                "properties_storageProfile_osDisk_osType": "Windows",
                "os": "Windows"
            })
        );
    }

    #[test]
    fn a_where_after_project_sees_only_projected_columns() {
        assert_eq!(
            names(run(
                "Resources | project id, name, type, location | where type =~ 'Microsoft.Compute/virtualMachines' | limit 2"
            )),
            ["api-01", "sql-01"]
        );
        let error = run("Resources | project name | where location == 'westeurope'");
        assert!(
            matches!(
                &error,
                Err(QueryError {
                    code: "FailedToResolveColumn",
                    ..
                })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn order_by_defaults_to_descending() {
        assert_eq!(
            names(run(
                "Resources | where type =~ 'microsoft.compute/virtualmachines' | order by name"
            )),
            ["sql-01", "api-01", "Web-01"]
        );
        assert_eq!(
            names(run(
                "Resources | where type =~ 'microsoft.compute/virtualmachines' | order by location asc, name asc"
            )),
            ["sql-01", "Web-01", "api-01"]
        );
    }

    #[test]
    fn string_operators_match_as_documented() {
        assert_eq!(
            names(run("Resources | where name contains 'NSG'")),
            ["api-01-nsg"]
        );
        assert_eq!(
            names(run("Resources | where name contains_cs 'NSG'")),
            Vec::<String>::new()
        );
        assert_eq!(
            names(run("Resources | where name startswith 'api'")),
            ["api-01", "api-01-nsg"]
        );
        assert_eq!(
            names(run("Resources | where name has 'nsg'")),
            ["api-01-nsg"]
        );
        assert_eq!(
            names(run("Resources | where name has 'ns'")),
            Vec::<String>::new()
        );
        assert_eq!(
            names(run(
                "Resources | where isnotempty(properties.storageProfile.osDisk.osType) | take 1"
            )),
            ["api-01"]
        );
    }

    #[test]
    fn queries_outside_the_subset_are_refused() {
        for query in [
            "Resources | summarize count() by location",
            "ResourceContainers | where type == 'x'",
            "Resources | where name matches regex 'a.*'",
            "Resources | extend x = 1",
            "Resources | where name == ",
            "Resources | where name == 'unterminated",
            "Resources | project strlen(name)",
            "",
        ] {
            assert!(run(query).is_err(), "{query}");
        }
    }
}
