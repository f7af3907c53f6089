//! The tabular operators: rows flow from the source table through each stage in order.
//!
//! Rows are vectors of shared cells, so a `where` or a `join` passes a resource's
//! `properties` along without copying it; a first `where` on the source asks its indexes
//! (`type`, `name`, `id`…) for candidates before testing the whole condition, so finding
//! one VM among thousands does not look at every row.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::ast::{
    BagExpansion, Expr, Function, Join, JoinKind, MvExpand, NamedExpr, Operator, Query, Stage,
};
use super::eval::{Bound, bind, evaluate, order, truthy, type_of, unknown_column};
use super::{Cell, ColumnDef, ColumnType, Needed, QueryError, Row, Schema, Source, unsupported};

/// Rows with the columns they have.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub schema: Schema,
    pub rows: Vec<Row>,
}

impl Table {
    /// The column names, in order.
    pub(crate) fn column_names(&self) -> Vec<String> {
        self.schema
            .iter()
            .map(|column| column.name.clone())
            .collect()
    }

    /// One row as a JSON object (values copied out of their cells).
    pub(crate) fn row_object(&self, row: &Row) -> Map<String, Value> {
        self.schema
            .iter()
            .zip(row)
            .map(|(column, cell)| (column.name.clone(), (**cell).clone()))
            .collect()
    }
}

/// Source rows a join lets a subquery skip: only rows whose `column` is one of `values`
/// (case-insensitively) can produce a key the other side has.
struct Restriction {
    column: String,
    values: Vec<String>,
}

impl Query {
    /// Runs the query over `source` (the `Resources` table).
    pub(crate) fn run(&self, source: &dyn Source) -> Result<Table, QueryError> {
        self.run_restricted(source, None)
    }

    fn run_restricted(
        &self,
        source: &dyn Source,
        restriction: Option<&Restriction>,
    ) -> Result<Table, QueryError> {
        if !self.table.eq_ignore_ascii_case("resources") {
            return Err(unsupported(format!(
                "table '{}' is not available; only 'Resources' is",
                self.table
            )));
        }
        let needed = self.needed_columns();
        let mut stages = self.stages.iter().peekable();
        let schema = source.schema().clone();
        let restricted = restriction.and_then(|restriction| {
            source.candidates(&restriction.column, &restriction.values, &needed)
        });
        let mut table = match stages.peek() {
            Some(Stage::Where(condition)) => {
                stages.next();
                let bound = bind(condition, &schema)?;
                let rows = match restricted {
                    Some(rows) => rows,
                    None => indexed_candidates(condition, source, &needed)
                        .unwrap_or_else(|| source.rows(&needed)),
                };
                let rows = rows
                    .into_iter()
                    .filter(|row| truthy(&evaluate(&bound, row)))
                    .collect();
                Table { schema, rows }
            }
            _ => Table {
                schema,
                rows: restricted.unwrap_or_else(|| source.rows(&needed)),
            },
        };
        for stage in stages {
            table = match stage {
                Stage::Where(condition) => where_(table, condition)?,
                Stage::Project(columns) => project(&table, columns)?,
                Stage::Extend(columns) => extend(table, columns)?,
                Stage::Order(keys) => order_by(table, keys)?,
                Stage::Limit(count) => {
                    let mut table = table;
                    table.rows.truncate(*count);
                    table
                }
                Stage::MvExpand(expand) => mv_expand(&table, expand)?,
                Stage::Join(join) => self::join(&table, join, source)?,
            };
        }
        Ok(table)
    }
}

impl Query {
    /// The source column a result column of this pipeline equals up to case (`c`,
    /// `tostring(c)`, `tolower(c)`, `toupper(c)` of a source column `c` that no stage
    /// redefined), when every stage keeps rows whole (no `limit`, no nested `join`), so
    /// restricting the source on `c` cannot change which rows produce a given value.
    fn origin_of(&self, result_column: &str) -> Option<String> {
        let mut origins: HashMap<String, String> = HashMap::new();
        let mut from_source = true;
        let origin = |expr: &Expr, origins: &HashMap<String, String>, from_source: bool| {
            let mut expr = expr;
            while let Expr::Call(
                Function::ToString | Function::ToLower | Function::ToUpper,
                arguments,
            ) = expr
            {
                expr = arguments.first()?;
            }
            match expr {
                Expr::Column(name) => origins
                    .get(name)
                    .cloned()
                    .or_else(|| from_source.then(|| name.clone())),
                _ => None,
            }
        };
        for stage in &self.stages {
            match stage {
                Stage::Where(_) | Stage::Order(_) => {}
                Stage::Limit(_) | Stage::Join(_) => return None,
                Stage::Extend(columns) => {
                    for column in columns {
                        match origin(&column.expr, &origins, from_source) {
                            Some(source) => origins.insert(column.name.clone(), source),
                            None => {
                                // A source column redefined is no longer the source's.
                                origins.insert(column.name.clone(), String::new())
                            }
                        };
                    }
                }
                Stage::MvExpand(expand) => {
                    for item in &expand.items {
                        origins.insert(item.name.clone(), String::new());
                    }
                    if let Some(index) = &expand.item_index {
                        origins.insert(index.clone(), String::new());
                    }
                }
                Stage::Project(columns) => {
                    let mut projected = HashMap::new();
                    for column in columns {
                        if let Some(source) = origin(&column.expr, &origins, from_source) {
                            projected.insert(column.name.clone(), source);
                        }
                    }
                    origins = projected;
                    from_source = false;
                }
            }
        }
        let origin = match origins.get(result_column) {
            Some(origin) => origin.clone(),
            None if from_source => result_column.to_owned(),
            None => return None,
        };
        (!origin.is_empty()).then_some(origin)
    }

    /// The source columns this pipeline can read: every column when no `project` limits
    /// its output, else those its expressions name up to the first `project` (after it,
    /// only projected columns exist). Over-counting is harmless.
    pub(super) fn needed_columns(&self) -> Needed {
        let mut names = BTreeSet::new();
        for stage in &self.stages {
            match stage {
                Stage::Where(expr) => column_names(expr, &mut names),
                Stage::Extend(columns) => columns
                    .iter()
                    .for_each(|column| column_names(&column.expr, &mut names)),
                Stage::Order(keys) => keys
                    .iter()
                    .for_each(|key| column_names(&key.expr, &mut names)),
                Stage::Limit(_) => {}
                Stage::MvExpand(expand) => expand
                    .items
                    .iter()
                    .for_each(|item| column_names(&item.expr, &mut names)),
                Stage::Join(join) => names.extend(join.on.iter().map(|(left, _)| left.clone())),
                Stage::Project(columns) => {
                    columns
                        .iter()
                        .for_each(|column| column_names(&column.expr, &mut names));
                    return Some(names);
                }
            }
        }
        None
    }
}

/// Adds the column names `expr` reads to `names`.
fn column_names(expr: &Expr, names: &mut BTreeSet<String>) {
    match expr {
        Expr::Literal(_) => {}
        Expr::Column(name) => {
            names.insert(name.clone());
        }
        Expr::Member(base, _) | Expr::Index(base, _) => column_names(base, names),
        Expr::Call(_, arguments) => arguments
            .iter()
            .for_each(|argument| column_names(argument, names)),
        Expr::Compare(left, _, right) | Expr::And(left, right) | Expr::Or(left, right) => {
            column_names(left, names);
            column_names(right, names);
        }
        Expr::In { value, list, .. } => {
            column_names(value, names);
            list.iter().for_each(|item| column_names(item, names));
        }
    }
}

/// The conjuncts of a condition (`a and b and c`).
fn conjuncts(condition: &Expr) -> Vec<&Expr> {
    match condition {
        Expr::And(left, right) => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// Rows an index says may match: the smallest candidate set among the conjuncts that
/// compare an indexed column with string literals (`==`, `=~`, `in`, `in~`), counted
/// before any row is made. The whole condition is still tested on each candidate, so a
/// case-sensitive `==` answered from the case-insensitive index stays exact.
fn indexed_candidates(condition: &Expr, source: &dyn Source, needed: &Needed) -> Option<Vec<Row>> {
    let literal = |expr: &Expr| match expr {
        Expr::Literal(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let mut best: Option<(usize, &String, Vec<String>)> = None;
    for conjunct in conjuncts(condition) {
        let lookup = match conjunct {
            Expr::Compare(left, Operator::Equal | Operator::EqualCaseless, right) => {
                match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(column), value) | (value, Expr::Column(column)) => {
                        literal(value).map(|value| (column, vec![value]))
                    }
                    _ => None,
                }
            }
            Expr::In {
                value,
                negated: false,
                list,
                ..
            } => match value.as_ref() {
                Expr::Column(column) => list
                    .iter()
                    .map(literal)
                    .collect::<Option<Vec<String>>>()
                    .map(|values| (column, values)),
                _ => None,
            },
            _ => None,
        };
        let Some((column, values)) = lookup else {
            continue;
        };
        if let Some(count) = source.count_candidates(column, &values)
            && best.as_ref().is_none_or(|(best, _, _)| count < *best)
        {
            best = Some((count, column, values));
        }
    }
    let (_, column, values) = best?;
    source.candidates(column, &values, needed)
}

fn where_(mut table: Table, condition: &Expr) -> Result<Table, QueryError> {
    let bound = bind(condition, &table.schema)?;
    table.rows.retain(|row| truthy(&evaluate(&bound, row)));
    Ok(table)
}

/// The value of a bound expression as a cell: a column's cell is shared, anything
/// computed is new.
fn cell(bound: &Bound, row: &Row) -> Cell {
    match bound {
        Bound::Column(index) => row
            .get(*index)
            .cloned()
            .unwrap_or_else(|| Arc::new(Value::Null)),
        other => Arc::new(evaluate(other, row).into_owned()),
    }
}

fn project(table: &Table, columns: &[NamedExpr]) -> Result<Table, QueryError> {
    let mut schema: Schema = Vec::new();
    let mut bound = Vec::new();
    for column in columns {
        if schema.iter().any(|known| known.name == column.name) {
            return Err(unsupported(format!(
                "the column name '{}' appears twice in 'project'",
                column.name
            )));
        }
        let expr = bind(&column.expr, &table.schema)?;
        schema.push(ColumnDef {
            name: column.name.clone(),
            kind: type_of(&expr, &table.schema),
        });
        bound.push(expr);
    }
    let rows = table
        .rows
        .iter()
        .map(|row| bound.iter().map(|expr| cell(expr, row)).collect())
        .collect();
    Ok(Table { schema, rows })
}

fn extend(mut table: Table, columns: &[NamedExpr]) -> Result<Table, QueryError> {
    // One column at a time: a later expression may use an earlier one, as in KQL.
    for column in columns {
        let expr = bind(&column.expr, &table.schema)?;
        let kind = type_of(&expr, &table.schema);
        let position = table
            .schema
            .iter()
            .position(|known| known.name == column.name);
        for row in &mut table.rows {
            let value = cell(&expr, row);
            match position {
                Some(position) => row[position] = value,
                None => row.push(value),
            }
        }
        match position {
            Some(position) => table.schema[position].kind = kind,
            None => table.schema.push(ColumnDef {
                name: column.name.clone(),
                kind,
            }),
        }
    }
    Ok(table)
}

fn order_by(mut table: Table, keys: &[super::ast::SortKey]) -> Result<Table, QueryError> {
    let bound: Vec<Bound> = keys
        .iter()
        .map(|key| bind(&key.expr, &table.schema))
        .collect::<Result<_, _>>()?;
    table.rows.sort_by(|left, right| {
        keys.iter()
            .zip(&bound)
            .map(|(key, expr)| {
                let (left, right) = (evaluate(expr, left), evaluate(expr, right));
                match (left.is_null(), right.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) if key.nulls_first => std::cmp::Ordering::Less,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) if key.nulls_first => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    (false, false) if key.descending => order(&left, &right).reverse(),
                    (false, false) => order(&left, &right),
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(table)
}

/// The values one `mv-expand` item expands a value into: the elements of an array (none
/// for an empty one), the entries of a property bag (as one-entry bags or `[key, value]`
/// pairs), or the value itself when it is neither (the row is kept as is).
fn expansions(value: Value, bag_expansion: BagExpansion) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Object(entries) => entries
            .into_iter()
            .map(|(key, value)| match bag_expansion {
                BagExpansion::Bag => {
                    let mut single = Map::new();
                    single.insert(key, value);
                    Value::Object(single)
                }
                BagExpansion::Array => Value::Array(vec![Value::String(key), value]),
            })
            .collect(),
        other => vec![other],
    }
}

fn mv_expand(table: &Table, expand: &MvExpand) -> Result<Table, QueryError> {
    let mut schema = table.schema.clone();
    let mut targets = Vec::new();
    let mut bound = Vec::new();
    for item in &expand.items {
        bound.push(bind(&item.expr, &table.schema)?);
        let position = match schema.iter().position(|known| known.name == item.name) {
            Some(position) => {
                schema[position].kind = ColumnType::Dynamic;
                position
            }
            None => {
                schema.push(ColumnDef {
                    name: item.name.clone(),
                    kind: ColumnType::Dynamic,
                });
                schema.len() - 1
            }
        };
        targets.push(position);
    }
    if let Some(name) = &expand.item_index {
        if schema.iter().any(|known| known.name == *name) {
            return Err(unsupported(format!(
                "with_itemindex names an existing column '{name}'"
            )));
        }
        schema.push(ColumnDef {
            name: name.clone(),
            kind: ColumnType::Number,
        });
    }
    let null: Cell = Arc::new(Value::Null);
    let mut rows = Vec::new();
    for row in &table.rows {
        let expanded: Vec<Vec<Value>> = bound
            .iter()
            .map(|expr| expansions(evaluate(expr, row).into_owned(), expand.bag_expansion))
            .collect();
        let count = expanded.iter().map(Vec::len).max().unwrap_or(0);
        let count = expand.limit.map_or(count, |limit| count.min(limit));
        let mut expanded: Vec<std::vec::IntoIter<Value>> =
            expanded.into_iter().map(Vec::into_iter).collect();
        for index in 0..count {
            let mut new_row = row.clone();
            new_row.resize(schema.len(), null.clone());
            for (values, &target) in expanded.iter_mut().zip(&targets) {
                new_row[target] = values.next().map_or_else(|| null.clone(), Arc::new);
            }
            if expand.item_index.is_some()
                && let Some(last) = new_row.last_mut()
            {
                *last = Arc::new(Value::from(index));
            }
            rows.push(new_row);
        }
    }
    Ok(Table { schema, rows })
}

/// A join key: the values of the key columns, typed so `"1"` and `1` differ; `None` when
/// one is null (null matches nothing).
fn join_key(row: &Row, positions: &[usize]) -> Option<String> {
    let mut key = String::new();
    for &position in positions {
        let value = row.get(position)?;
        match &**value {
            Value::Null => return None,
            Value::String(text) => {
                key.push('s');
                key.push_str(text);
            }
            Value::Number(number) => {
                key.push('n');
                key.push_str(
                    &number
                        .as_f64()
                        .map_or_else(|| number.to_string(), |f| f.to_string()),
                );
            }
            other => {
                key.push('j');
                key.push_str(&other.to_string());
            }
        }
        key.push('\u{1}');
    }
    Some(key)
}

fn join(left: &Table, join: &Join, source: &dyn Source) -> Result<Table, QueryError> {
    let position = |schema: &Schema, name: &str| {
        schema
            .iter()
            .position(|column| column.name == name)
            .ok_or_else(|| unknown_column(name, schema))
    };
    let left_keys: Vec<usize> = join
        .on
        .iter()
        .map(|(name, _)| position(&left.schema, name))
        .collect::<Result<_, _>>()?;
    // A semi-join: when the right side's key comes straight from a source column, only
    // the source rows whose column holds a left key can match, so the subquery reads
    // just those (found through the source's index). Rows of the right side that match
    // nothing are dropped by every kind but fullouter, which reads them all.
    let restriction = (join.kind != JoinKind::FullOuter)
        .then(|| {
            join.on
                .iter()
                .zip(&left_keys)
                .find_map(|((_, right), &key)| {
                    let column = join.right.origin_of(right)?;
                    let mut values: Vec<String> = left
                        .rows
                        .iter()
                        .filter_map(|row| row.get(key)?.as_str().map(str::to_owned))
                        .collect();
                    values.sort_unstable();
                    values.dedup();
                    Some(Restriction { column, values })
                })
        })
        .flatten();
    let right = join.right.run_restricted(source, restriction.as_ref())?;
    let right_keys: Vec<usize> = join
        .on
        .iter()
        .map(|(_, name)| position(&right.schema, name))
        .collect::<Result<_, _>>()?;

    // All columns of both sides; a right column whose name is taken gets a number.
    let mut schema = left.schema.clone();
    for column in &right.schema {
        let mut name = column.name.clone();
        let mut suffix = 1;
        while schema.iter().any(|known| known.name == name) {
            name = format!("{}{suffix}", column.name);
            suffix += 1;
        }
        schema.push(ColumnDef {
            name,
            kind: column.kind,
        });
    }
    let empty = |columns: &Schema| -> Vec<Cell> {
        let text: Cell = Arc::new(Value::String(String::new()));
        let null: Cell = Arc::new(Value::Null);
        columns
            .iter()
            .map(|column| match column.kind {
                ColumnType::String => text.clone(),
                _ => null.clone(),
            })
            .collect()
    };
    let right_empty = empty(&right.schema);
    let left_empty = empty(&left.schema);

    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, row) in right.rows.iter().enumerate() {
        if let Some(key) = join_key(row, &right_keys) {
            by_key.entry(key).or_default().push(index);
        }
    }
    let mut matched_right = vec![false; right.rows.len()];
    let mut seen_left_keys = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for row in &left.rows {
        let key = join_key(row, &left_keys);
        if join.kind == JoinKind::InnerUnique {
            // The left side deduplicated on the key: the first row of each key stays.
            match &key {
                Some(key) if !seen_left_keys.insert(key.clone()) => continue,
                _ => {}
            }
        }
        let matches = key.as_ref().and_then(|key| by_key.get(key));
        match matches {
            Some(matches) => {
                for &index in matches {
                    matched_right[index] = true;
                    let mut joined = row.clone();
                    joined.extend(right.rows[index].iter().cloned());
                    rows.push(joined);
                }
            }
            None if matches!(join.kind, JoinKind::LeftOuter | JoinKind::FullOuter) => {
                let mut joined = row.clone();
                joined.extend(right_empty.iter().cloned());
                rows.push(joined);
            }
            None => {}
        }
    }
    if join.kind == JoinKind::FullOuter {
        for (index, row) in right.rows.iter().enumerate() {
            if !matched_right[index] {
                let mut joined = left_empty.clone();
                joined.extend(row.iter().cloned());
                rows.push(joined);
            }
        }
    }
    Ok(Table { schema, rows })
}
