//! Reads tokens into a [`Query`]. What the emulator does not implement is refused here
//! with `UnsupportedQuery`, naming the operator or function; what is not KQL at all is a
//! `ParserFailure`.

use serde_json::Value;

use super::ast::{
    BagExpansion, Expr, Function, Join, JoinKind, MvExpand, NamedExpr, Operator, Query, SortKey,
    Stage,
};
use super::lexer::{Token, describe, parser_failure, tokenize};
use super::{QueryError, unsupported};

/// Parses a query of the supported subset.
pub(crate) fn parse(text: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(parser_failure("the query is empty"));
    }
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let query = parser.query()?;
    match parser.peek() {
        None => Ok(query),
        Some(token) => Err(parser_failure(format!(
            "expected '|' or the end of the query but found {}",
            describe(Some(token))
        ))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.position + offset)
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

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.at_symbol(symbol);
        if found {
            self.position += 1;
        }
        found
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.at_word(word);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        if self.eat_symbol(symbol) {
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

    fn count(&mut self, after: &str) -> Result<usize, QueryError> {
        match self.next() {
            Some(Token::Number(number)) if number >= 0.0 && number.fract() == 0.0 =>
            {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "checked non-negative and whole; saturates beyond usize"
                )]
                Ok(number as usize)
            }
            other => Err(parser_failure(format!(
                "expected a row count after '{after}' but found {}",
                describe(other.as_ref())
            ))),
        }
    }

    /// `Table | stage …`, up to the end or a closing parenthesis.
    fn query(&mut self) -> Result<Query, QueryError> {
        let table = self.identifier()?;
        let mut stages = Vec::new();
        while self.eat_symbol("|") {
            stages.push(self.stage()?);
        }
        Ok(Query { table, stages })
    }

    fn stage(&mut self) -> Result<Stage, QueryError> {
        let operator = self.identifier()?;
        Ok(match operator.as_str() {
            "where" | "filter" => Stage::Where(self.expression()?),
            "project" => Stage::Project(self.named_expressions("project")?),
            "extend" => Stage::Extend(self.named_expressions("extend")?),
            "order" | "sort" => {
                if !self.eat_word("by") {
                    return Err(parser_failure(format!("expected 'by' after '{operator}'")));
                }
                Stage::Order(self.sort_keys()?)
            }
            "limit" | "take" => Stage::Limit(self.count(&operator)?),
            "mv-expand" => Stage::MvExpand(self.mv_expand()?),
            // The legacy form: the same, but at most 128 rows from each row by default.
            "mvexpand" => {
                let mut expand = self.mv_expand()?;
                expand.limit = expand.limit.or(Some(128));
                Stage::MvExpand(expand)
            }
            "join" => Stage::Join(Box::new(self.join()?)),
            other => {
                return Err(unsupported(format!(
                    "the operator '{other}' is not supported"
                )));
            }
        })
    }

    /// `name = expr, expr, …` (an expression without a name must be a column path).
    fn named_expressions(&mut self, operator: &str) -> Result<Vec<NamedExpr>, QueryError> {
        let mut named = Vec::new();
        loop {
            named.push(self.named_expression(operator)?);
            if !self.eat_symbol(",") {
                return Ok(named);
            }
        }
    }

    fn named_expression(&mut self, operator: &str) -> Result<NamedExpr, QueryError> {
        let alias = match (self.peek(), self.peek_at(1)) {
            (Some(Token::Identifier(name)), Some(Token::Symbol("="))) => {
                let name = name.clone();
                self.position += 2;
                Some(name)
            }
            _ => None,
        };
        let expr = self.expression()?;
        let name = match alias.or_else(|| default_name(&expr)) {
            Some(name) => name,
            None => {
                return Err(unsupported(format!(
                    "an expression in '{operator}' that is not a column path needs a name \
                     (name = tostring(…))"
                )));
            }
        };
        Ok(NamedExpr { name, expr })
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, QueryError> {
        let mut keys = Vec::new();
        loop {
            let expr = self.expression()?;
            let descending = if self.eat_word("asc") {
                false
            } else {
                self.eat_word("desc");
                true
            };
            let nulls_first = if self.eat_word("nulls") {
                if self.eat_word("first") {
                    true
                } else if self.eat_word("last") {
                    false
                } else {
                    return Err(parser_failure("expected 'first' or 'last' after 'nulls'"));
                }
            } else {
                !descending
            };
            keys.push(SortKey {
                expr,
                descending,
                nulls_first,
            });
            if !self.eat_symbol(",") {
                return Ok(keys);
            }
        }
    }

    fn mv_expand(&mut self) -> Result<MvExpand, QueryError> {
        let mut bag_expansion = BagExpansion::Bag;
        let mut item_index = None;
        loop {
            let parameter = match (self.peek(), self.peek_at(1)) {
                (Some(Token::Identifier(name)), Some(Token::Symbol("=")))
                    if ["kind", "bagexpansion", "with_itemindex"].contains(&name.as_str()) =>
                {
                    name.clone()
                }
                _ => break,
            };
            self.position += 2;
            let value = self.identifier()?;
            match (parameter.as_str(), value.as_str()) {
                ("with_itemindex", _) => item_index = Some(value),
                (_, "bag") => bag_expansion = BagExpansion::Bag,
                (_, "array") => bag_expansion = BagExpansion::Array,
                (_, other) => {
                    return Err(parser_failure(format!(
                        "'{parameter}' is 'bag' or 'array', not '{other}'"
                    )));
                }
            }
        }
        let mut items = Vec::new();
        loop {
            items.push(self.named_expression("mv-expand")?);
            if self.at_word("to") {
                return Err(unsupported(
                    "'mv-expand … to typeof(…)' is not supported (the expanded column is dynamic)",
                ));
            }
            if !self.eat_symbol(",") {
                break;
            }
        }
        let limit = if self.eat_word("limit") {
            Some(self.count("limit")?)
        } else {
            None
        };
        Ok(MvExpand {
            bag_expansion,
            item_index,
            items,
            limit,
        })
    }

    fn join(&mut self) -> Result<Join, QueryError> {
        let mut kind = JoinKind::InnerUnique;
        while let (Some(Token::Identifier(name)), Some(Token::Symbol("="))) =
            (self.peek(), self.peek_at(1))
        {
            let name = name.clone();
            self.position += 2;
            if name != "kind" {
                return Err(unsupported(format!(
                    "the join parameter '{name}' is not supported"
                )));
            }
            let value = self.identifier()?;
            kind = match value.as_str() {
                "innerunique" => JoinKind::InnerUnique,
                "inner" => JoinKind::Inner,
                "leftouter" => JoinKind::LeftOuter,
                "fullouter" => JoinKind::FullOuter,
                "rightouter" | "leftanti" | "anti" | "leftantisemi" | "rightanti"
                | "rightantisemi" | "leftsemi" | "rightsemi" => {
                    return Err(unsupported(format!(
                        "join kind '{value}' is not supported (Resource Graph supports \
                         innerunique, inner, leftouter and fullouter)"
                    )));
                }
                other => {
                    return Err(parser_failure(format!("'{other}' is not a join kind")));
                }
            };
        }
        if self.at_word("hint") && matches!(self.peek_at(1), Some(Token::Symbol("."))) {
            return Err(unsupported("join hints (hint.…) are not supported"));
        }
        let right = if self.eat_symbol("(") {
            let query = self.query()?;
            self.expect_symbol(")")?;
            query
        } else {
            Query {
                table: self.identifier()?,
                stages: Vec::new(),
            }
        };
        if !self.eat_word("on") {
            return Err(parser_failure(format!(
                "expected 'on' after the right side of a join but found {}",
                describe(self.peek())
            )));
        }
        let mut on = Vec::new();
        loop {
            on.push(self.join_condition()?);
            if !(self.eat_symbol(",") || self.eat_word("and")) {
                break;
            }
        }
        Ok(Join { kind, right, on })
    }

    /// `column` or `$left.a == $right.b` (either side first).
    fn join_condition(&mut self) -> Result<(String, String), QueryError> {
        if !self.at_symbol("$") {
            let column = self.identifier()?;
            return Ok((column.clone(), column));
        }
        let side = |parser: &mut Self| -> Result<(String, String), QueryError> {
            parser.expect_symbol("$")?;
            let side = parser.identifier()?;
            if side != "left" && side != "right" {
                return Err(parser_failure(format!(
                    "expected $left or $right but found ${side}"
                )));
            }
            parser.expect_symbol(".")?;
            Ok((side, parser.identifier()?))
        };
        let first = side(self)?;
        if !self.eat_symbol("==") {
            return Err(unsupported(
                "a join condition other than '$left.a == $right.b' is not supported",
            ));
        }
        let second = side(self)?;
        match (first.0.as_str(), second.0.as_str()) {
            ("left", "right") => Ok((first.1, second.1)),
            ("right", "left") => Ok((second.1, first.1)),
            _ => Err(parser_failure(
                "a join condition compares a $left column with a $right column",
            )),
        }
    }

    fn expression(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.conjunction()?;
        while self.eat_word("or") {
            let right = self.conjunction()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.comparison()?;
        while self.eat_word("and") {
            let right = self.comparison()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.postfix()?;
        let negated = self.at_symbol("!") && matches!(self.peek_at(1), Some(Token::Identifier(_)));
        let operator = match (self.peek(), negated) {
            (Some(Token::Symbol(symbol)), false) => match *symbol {
                "==" => Some(Operator::Equal),
                "=~" => Some(Operator::EqualCaseless),
                "!=" | "<>" => Some(Operator::NotEqual),
                "!~" => Some(Operator::NotEqualCaseless),
                "<" => Some(Operator::Less),
                "<=" => Some(Operator::LessOrEqual),
                ">" => Some(Operator::Greater),
                ">=" => Some(Operator::GreaterOrEqual),
                "+" | "-" | "*" | "/" | "%" => {
                    return Err(unsupported("arithmetic is not supported"));
                }
                _ => None,
            },
            (Some(Token::Symbol("!")), true) | (Some(Token::Identifier(_)), false) => {
                let word = match self.peek_at(usize::from(negated)) {
                    Some(Token::Identifier(word)) => word.clone(),
                    _ => String::new(),
                };
                let known = match (word.as_str(), negated) {
                    ("in", _) => {
                        self.position += 1 + usize::from(negated);
                        let caseless = self.eat_symbol("~");
                        self.expect_symbol("(")?;
                        let mut list = vec![self.expression()?];
                        while self.eat_symbol(",") {
                            list.push(self.expression()?);
                        }
                        self.expect_symbol(")")?;
                        return Ok(Expr::In {
                            value: Box::new(left),
                            caseless,
                            negated,
                            list,
                        });
                    }
                    ("contains", false) => Some(Operator::Contains),
                    ("contains", true) => Some(Operator::NotContains),
                    ("contains_cs", false) => Some(Operator::ContainsCaseSensitive),
                    ("contains_cs", true) => Some(Operator::NotContainsCaseSensitive),
                    ("startswith", false) => Some(Operator::StartsWith),
                    ("startswith", true) => Some(Operator::NotStartsWith),
                    ("endswith", false) => Some(Operator::EndsWith),
                    ("endswith", true) => Some(Operator::NotEndsWith),
                    ("has", false) => Some(Operator::Has),
                    ("has", true) => Some(Operator::NotHas),
                    (
                        "and" | "or" | "asc" | "desc" | "nulls" | "on" | "limit" | "to" | "by",
                        false,
                    ) => None,
                    (other, _) => {
                        return Err(unsupported(format!(
                            "the operator '{}{other}' is not supported",
                            if negated { "!" } else { "" }
                        )));
                    }
                };
                if known.is_some() {
                    self.position += usize::from(negated);
                }
                known
            }
            _ => None,
        };
        let Some(operator) = operator else {
            return Ok(left);
        };
        self.position += 1;
        let right = self.postfix()?;
        Ok(Expr::Compare(Box::new(left), operator, Box::new(right)))
    }

    fn postfix(&mut self) -> Result<Expr, QueryError> {
        let mut expr = self.primary()?;
        loop {
            if self.eat_symbol(".") {
                expr = Expr::Member(Box::new(expr), self.identifier()?);
            } else if self.eat_symbol("[") {
                expr = match self.next() {
                    Some(Token::String(field)) => Expr::Member(Box::new(expr), field),
                    Some(Token::Number(number)) if number.fract() == 0.0 =>
                    {
                        #[allow(
                            clippy::cast_possible_truncation,
                            reason = "checked whole; saturates beyond i64"
                        )]
                        Expr::Index(Box::new(expr), number as i64)
                    }
                    Some(Token::Symbol("-")) => match self.next() {
                        Some(Token::Number(number)) if number.fract() == 0.0 =>
                        {
                            #[allow(
                                clippy::cast_possible_truncation,
                                reason = "checked whole; saturates beyond i64"
                            )]
                            Expr::Index(Box::new(expr), -(number as i64))
                        }
                        other => {
                            return Err(parser_failure(format!(
                                "expected an index after '-' but found {}",
                                describe(other.as_ref())
                            )));
                        }
                    },
                    other => {
                        return Err(parser_failure(format!(
                            "expected a field name or index in brackets but found {}",
                            describe(other.as_ref())
                        )));
                    }
                };
                self.expect_symbol("]")?;
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        match self.next() {
            Some(Token::String(text)) => Ok(Expr::Literal(Value::String(text))),
            Some(Token::Number(number)) => Ok(Expr::Literal(number_value(number))),
            Some(Token::Symbol("-")) => match self.next() {
                Some(Token::Number(number)) => Ok(Expr::Literal(number_value(-number))),
                other => Err(parser_failure(format!(
                    "expected a number after '-' but found {}",
                    describe(other.as_ref())
                ))),
            },
            Some(Token::Symbol("(")) => {
                let inner = self.expression()?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            Some(Token::Identifier(word)) => {
                if self.at_symbol("(") {
                    self.position += 1;
                    let Some(function) = Function::named(&word) else {
                        return Err(unsupported(format!(
                            "the function '{word}' is not supported"
                        )));
                    };
                    let mut arguments = Vec::new();
                    if !self.eat_symbol(")") {
                        loop {
                            arguments.push(self.expression()?);
                            if !self.eat_symbol(",") {
                                break;
                            }
                        }
                        self.expect_symbol(")")?;
                    }
                    if !function.takes(arguments.len()) {
                        return Err(parser_failure(format!(
                            "'{word}' does not take {} argument(s)",
                            arguments.len()
                        )));
                    }
                    return Ok(Expr::Call(function, arguments));
                }
                Ok(match word.as_str() {
                    "true" => Expr::Literal(Value::Bool(true)),
                    "false" => Expr::Literal(Value::Bool(false)),
                    _ => Expr::Column(word),
                })
            }
            other => Err(parser_failure(format!(
                "expected an expression but found {}",
                describe(other.as_ref())
            ))),
        }
    }
}

fn number_value(number: f64) -> Value {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "only whole numbers within i64 take this branch"
    )]
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        return Value::from(number as i64);
    }
    serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
}

/// KQL's name for an expression without one: a column path's steps joined by `_`
/// (`properties.osDisk.osType` → `properties_osDisk_osType`); `None` otherwise.
pub(super) fn default_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(name) => Some(name.clone()),
        Expr::Member(base, field) => Some(format!("{}_{field}", default_name(base)?)),
        Expr::Index(base, index) => Some(format!("{}_{index}", default_name(base)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Query {
        match parse(text) {
            Ok(query) => query,
            Err(error) => panic!("{text}: {error:?}"),
        }
    }

    fn refused(text: &str) -> &'static str {
        match parse(text) {
            Ok(query) => panic!("{text} parsed: {query:?}"),
            Err(error) => error.code,
        }
    }

    #[test]
    fn the_portal_style_query_parses() {
        let query = parsed(
            "resources
             | where type =~ 'microsoft.compute/virtualmachines' and name =~ 'web-01'
             | extend powerState = tostring(properties.extended.instanceView.powerState.code)
             | mv-expand nic = properties.networkProfile.networkInterfaces
             | extend nicId = tolower(tostring(nic.id))
             | join kind=leftouter (
                 resources
                 | where type =~ 'microsoft.network/networkinterfaces'
                 | mv-expand ipConfiguration = properties.ipConfigurations
                 | project nicId = tolower(id), privateIp = tostring(ipConfiguration.properties.privateIPAddress)
               ) on nicId
             | join kind=leftouter (resources | project publicIpId = tolower(id)) on $left.nicId == $right.publicIpId
             | project id, name, powerState, nicId, privateIp",
        );
        assert_eq!(query.stages.len(), 7);
        let Stage::Join(join) = &query.stages[4] else {
            panic!("{:?}", query.stages[4]);
        };
        assert_eq!(join.kind, JoinKind::LeftOuter);
        assert_eq!(join.on, [("nicId".to_owned(), "nicId".to_owned())]);
        assert_eq!(join.right.stages.len(), 3);
        let Stage::Join(second) = &query.stages[5] else {
            panic!("{:?}", query.stages[5]);
        };
        assert_eq!(second.on, [("nicId".to_owned(), "publicIpId".to_owned())]);
    }

    #[test]
    fn joins_default_to_innerunique_and_refuse_other_kinds() {
        let query = parsed("T | join (T) on $right.a == $left.b, c");
        let Stage::Join(join) = &query.stages[0] else {
            panic!();
        };
        assert_eq!(join.kind, JoinKind::InnerUnique);
        assert_eq!(
            join.on,
            [
                ("b".to_owned(), "a".to_owned()),
                ("c".to_owned(), "c".to_owned())
            ]
        );
        assert_eq!(
            refused("T | join kind=leftanti (T) on a"),
            "UnsupportedQuery"
        );
        assert_eq!(refused("T | join kind=sideways (T) on a"), "ParserFailure");
        assert_eq!(
            refused("T | join hint.strategy=broadcast (T) on a"),
            "UnsupportedQuery"
        );
        assert_eq!(refused("T | join (T)"), "ParserFailure");
    }

    #[test]
    fn mv_expand_takes_its_parameters() {
        let query = parsed(
            "T | mv-expand kind=array with_itemindex=i a = properties.list, properties.other limit 5",
        );
        let Stage::MvExpand(expand) = &query.stages[0] else {
            panic!();
        };
        assert_eq!(expand.bag_expansion, BagExpansion::Array);
        assert_eq!(expand.item_index.as_deref(), Some("i"));
        assert_eq!(expand.items[0].name, "a");
        assert_eq!(expand.items[1].name, "properties_other");
        assert_eq!(expand.limit, Some(5));
        assert_eq!(
            refused("T | mv-expand a to typeof(string)"),
            "UnsupportedQuery"
        );
    }

    #[test]
    fn unnamed_calls_and_unknown_things_are_refused() {
        for query in [
            "T | project tolower(name)",
            "T | extend strlen(name)",
            "T | summarize count()",
            "T | where name matches regex 'a'",
            "T | where x + 1 > 2",
            "T | project-away name",
        ] {
            assert_eq!(refused(query), "UnsupportedQuery", "{query}");
        }
        for query in [
            "T | where",
            "T | where name ==",
            "T | take",
            "T | where iff(a)",
            "",
            "T )",
        ] {
            assert_eq!(refused(query), "ParserFailure", "{query}");
        }
    }
}
