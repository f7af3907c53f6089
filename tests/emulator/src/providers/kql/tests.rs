//! The operators and functions, each on a small table, against what Microsoft's KQL
//! documentation says they do.

use std::collections::HashMap;

use serde_json::json;

use super::*;

/// A table for tests: columns and rows as JSON arrays, with case-insensitive indexes on
/// `id`, `name` and `type` like the Resource Graph table's; it counts the rows it makes.
pub(super) struct TestSource {
    schema: Schema,
    rows: Vec<Row>,
    indexes: HashMap<&'static str, HashMap<String, Vec<usize>>>,
    made: std::sync::atomic::AtomicUsize,
}

impl TestSource {
    fn new(columns: &[(&str, ColumnType)], values: &[Value]) -> Self {
        let schema: Schema = columns
            .iter()
            .map(|(name, kind)| ColumnDef {
                name: (*name).to_owned(),
                kind: *kind,
            })
            .collect();
        let rows: Vec<Row> = values
            .iter()
            .map(|row| {
                row.as_array()
                    .into_iter()
                    .flatten()
                    .map(|value| Arc::new(value.clone()))
                    .collect()
            })
            .collect();
        let mut indexes: HashMap<&'static str, HashMap<String, Vec<usize>>> = HashMap::new();
        for column in ["id", "name", "type"] {
            let Some(position) = schema.iter().position(|known| known.name == column) else {
                continue;
            };
            let index = indexes.entry(column).or_default();
            for (row_index, row) in rows.iter().enumerate() {
                if let Some(value) = row[position].as_str() {
                    index
                        .entry(value.to_lowercase())
                        .or_default()
                        .push(row_index);
                }
            }
        }
        Self {
            schema,
            rows,
            indexes,
            made: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many rows queries took from the table so far.
    fn made(&self) -> usize {
        self.made.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Two VMs (one with two NICs, one with none), the NICs, a public IP.
    fn attached() -> Self {
        let vm = |name: &str, nics: &[&str], power: &str| {
            json!([
                format!("/s/VMs/{name}"),
                name,
                "microsoft.compute/virtualmachines",
                {
                    "extended": { "instanceView": { "powerState": { "code": power } } },
                    "networkProfile": { "networkInterfaces": nics.iter().map(|nic| json!({ "id": format!("/s/NICs/{nic}") })).collect::<Vec<_>>() },
                    "tags": { "a": 1, "b": 2 }
                }
            ])
        };
        let nic = |name: &str, address: &str, public: Option<&str>| {
            let mut configuration = json!({ "properties": { "privateIPAddress": address } });
            if let Some(public) = public {
                configuration["properties"]["publicIPAddress"] =
                    json!({ "id": format!("/s/IPs/{public}") });
            }
            json!([
                format!("/s/nics/{name}"),
                name,
                "microsoft.network/networkinterfaces",
                { "ipConfigurations": [configuration] }
            ])
        };
        let ip = |name: &str, address: &str| {
            json!([
                format!("/s/ips/{name}"),
                name,
                "microsoft.network/publicipaddresses",
                { "ipAddress": address }
            ])
        };
        Self::new(
            &[
                ("id", ColumnType::String),
                ("name", ColumnType::String),
                ("type", ColumnType::String),
                ("properties", ColumnType::Dynamic),
            ],
            &[
                vm(
                    "web-01",
                    &["web-01-nic", "web-01-nic2"],
                    "PowerState/running",
                ),
                vm("db-01", &[], "PowerState/deallocated"),
                nic("web-01-nic", "10.0.0.4", Some("web-01-ip")),
                nic("web-01-nic2", "10.0.1.4", None),
                ip("web-01-ip", "127.0.0.1"),
            ],
        )
    }

    /// Three VMs and an NSG in three groups, with an OS type in `properties`.
    fn machines() -> Self {
        let row = |name: &str, kind: &str, location: &str, group: &str, os: &str| {
            json!([
                format!("/subscriptions/s/resourceGroups/{group}/providers/x/{name}"),
                name,
                kind,
                location,
                group,
                { "storageProfile": { "osDisk": { "osType": os } }, "count": 2 }
            ])
        };
        Self::new(
            &[
                ("id", ColumnType::String),
                ("name", ColumnType::String),
                ("type", ColumnType::String),
                ("location", ColumnType::String),
                ("resourceGroup", ColumnType::String),
                ("properties", ColumnType::Dynamic),
            ],
            &[
                row(
                    "api-01",
                    "microsoft.compute/virtualmachines",
                    "westeurope",
                    "rg-web",
                    "Linux",
                ),
                row(
                    "sql-01",
                    "microsoft.compute/virtualmachines",
                    "northeurope",
                    "rg-data",
                    "Windows",
                ),
                row(
                    "api-01-nsg",
                    "microsoft.network/networksecuritygroups",
                    "westeurope",
                    "rg-web",
                    "",
                ),
                row(
                    "Web-01",
                    "microsoft.compute/virtualmachines",
                    "westeurope",
                    "rg-app",
                    "Linux",
                ),
            ],
        )
    }
}

impl Source for TestSource {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn rows(&self, _: &Needed) -> Vec<Row> {
        self.made
            .fetch_add(self.rows.len(), std::sync::atomic::Ordering::SeqCst);
        self.rows.clone()
    }

    fn candidates(&self, column: &str, values: &[String], _: &Needed) -> Option<Vec<Row>> {
        let index = self.indexes.get(column)?;
        let mut positions: Vec<usize> = values
            .iter()
            .filter_map(|value| index.get(&value.to_lowercase()))
            .flatten()
            .copied()
            .collect();
        positions.sort_unstable();
        positions.dedup();
        self.made
            .fetch_add(positions.len(), std::sync::atomic::Ordering::SeqCst);
        Some(
            positions
                .into_iter()
                .map(|position| self.rows[position].clone())
                .collect(),
        )
    }

    fn count_candidates(&self, column: &str, values: &[String]) -> Option<usize> {
        let index = self.indexes.get(column)?;
        Some(
            values
                .iter()
                .filter_map(|value| index.get(&value.to_lowercase()))
                .map(Vec::len)
                .sum(),
        )
    }
}

fn run_on(source: &TestSource, text: &str) -> Result<(Vec<String>, Vec<Value>), QueryError> {
    let table = parse(text)?.run(source)?;
    let rows = table
        .rows
        .iter()
        .map(|row| Value::Object(table.row_object(row)))
        .collect();
    Ok((table.column_names(), rows))
}

fn run(text: &str) -> Result<(Vec<String>, Vec<Value>), QueryError> {
    run_on(&TestSource::attached(), text)
}

fn rows(text: &str) -> Vec<Value> {
    match run(text) {
        Ok((_, rows)) => rows,
        Err(error) => panic!("{text}: {error:?}"),
    }
}

fn error_code(text: &str) -> &'static str {
    match run(text) {
        Ok(result) => panic!("{text} ran: {result:?}"),
        Err(error) => error.code,
    }
}

#[test]
fn where_uses_the_index_and_still_tests_the_whole_condition() {
    assert_eq!(
        rows(
            "resources | where type =~ 'Microsoft.Compute/virtualMachines' and name == 'web-01' | project name"
        ),
        [json!({ "name": "web-01" })]
    );
    // `==` is case-sensitive even though the index is not.
    assert!(rows("resources | where type == 'Microsoft.Compute/virtualMachines'").is_empty());
    assert_eq!(
        rows("resources | where type in~ ('MICROSOFT.NETWORK/PUBLICIPADDRESSES') | project name"),
        [json!({ "name": "web-01-ip" })]
    );
}

#[test]
fn extend_adds_replaces_and_chains_columns() {
    let (columns, found) = match run("resources | where name == 'web-01' \
             | extend powerState = tostring(properties.extended.instanceView.powerState.code), \
                      short = strcat(name, ':', powerState), name = toupper(name)")
    {
        Ok(result) => result,
        Err(error) => panic!("{error:?}"),
    };
    assert_eq!(
        columns,
        ["id", "name", "type", "properties", "powerState", "short"]
    );
    assert_eq!(found[0]["name"], "WEB-01");
    assert_eq!(found[0]["powerState"], "PowerState/running");
    assert_eq!(found[0]["short"], "web-01:PowerState/running");
}

#[test]
fn mv_expand_makes_a_row_per_element_and_drops_empty_arrays() {
    let expanded = rows(
        "resources | where type =~ 'microsoft.compute/virtualmachines' \
             | mv-expand nic = properties.networkProfile.networkInterfaces \
             | project name, nicId = tostring(nic.id)",
    );
    assert_eq!(
        expanded,
        [
            json!({ "name": "web-01", "nicId": "/s/NICs/web-01-nic" }),
            json!({ "name": "web-01", "nicId": "/s/NICs/web-01-nic2" }),
        ]
    );
    // A value that is not an array keeps its row as is.
    assert_eq!(
        rows(
            "resources | where name == 'db-01' | mv-expand x = properties.missing | project name, x"
        ),
        [json!({ "name": "db-01", "x": null })]
    );
}

#[test]
fn mv_expand_expands_bags_indexes_items_and_limits() {
    assert_eq!(
        rows(
            "resources | where name == 'db-01' | mv-expand with_itemindex=i tag = properties.tags | project tag, i"
        ),
        [
            json!({ "tag": { "a": 1 }, "i": 0 }),
            json!({ "tag": { "b": 2 }, "i": 1 })
        ]
    );
    assert_eq!(
        rows(
            "resources | where name == 'db-01' | mv-expand kind=array tag = properties.tags limit 1 | project tag"
        ),
        [json!({ "tag": ["a", 1] })]
    );
    // Several expressions expand in parallel; the shorter is padded with null.
    assert_eq!(
        rows(
            "resources | where name == 'web-01' | mv-expand nic = properties.networkProfile.networkInterfaces, tag = properties.tags | project n = tostring(nic.id), tag"
        ),
        [
            json!({ "n": "/s/NICs/web-01-nic", "tag": { "a": 1 } }),
            json!({ "n": "/s/NICs/web-01-nic2", "tag": { "b": 2 } }),
        ]
    );
}

const NICS: &str = "(resources | where type =~ 'microsoft.network/networkinterfaces' \
         | mv-expand configuration = properties.ipConfigurations \
         | project nicId = tolower(id), privateIp = tostring(configuration.properties.privateIPAddress), \
                   publicIpId = tolower(tostring(configuration.properties.publicIPAddress.id)))";

fn vms_with_nics(kind: &str) -> String {
    format!(
        "resources | where type =~ 'microsoft.compute/virtualmachines' \
             | mv-expand nic = properties.networkProfile.networkInterfaces \
             | extend nicId = tolower(tostring(nic.id)) \
             | join {kind} {NICS} on nicId"
    )
}

#[test]
fn leftouter_keeps_unmatched_left_rows_with_empty_right_columns() {
    let query = format!(
        "{} | join kind=leftouter (resources | where type =~ 'microsoft.network/publicipaddresses' \
               | project publicIpId = tolower(id), publicIp = tostring(properties.ipAddress)) on publicIpId \
             | project name, nicId, nicId1, privateIp, publicIpId, publicIp",
        vms_with_nics("kind=leftouter")
    );
    assert_eq!(
        rows(&query),
        [
            json!({ "name": "web-01", "nicId": "/s/nics/web-01-nic", "nicId1": "/s/nics/web-01-nic", "privateIp": "10.0.0.4", "publicIpId": "/s/ips/web-01-ip", "publicIp": "127.0.0.1" }),
            json!({ "name": "web-01", "nicId": "/s/nics/web-01-nic2", "nicId1": "/s/nics/web-01-nic2", "privateIp": "10.0.1.4", "publicIpId": "", "publicIp": "" }),
        ]
    );
}

#[test]
fn join_columns_keep_both_sides_and_number_duplicates() {
    let (columns, _) = match run(&vms_with_nics("kind=inner")) {
        Ok(result) => result,
        Err(error) => panic!("{error:?}"),
    };
    assert_eq!(
        columns,
        [
            "id",
            "name",
            "type",
            "properties",
            "nic",
            "nicId",
            "nicId1",
            "privateIp",
            "publicIpId"
        ]
    );
}

#[test]
fn inner_and_innerunique_differ_on_duplicate_left_keys() {
    // Two left rows with the same key.
    let left = "resources | where name == 'web-01' or name == 'db-01' | extend key = 'k' | project name, key";
    let right = "(resources | where type =~ 'microsoft.network/publicipaddresses' | extend key = 'k' | project key, ip = name)";
    let inner = rows(&format!(
        "{left} | join kind=inner {right} on key | project name, ip"
    ));
    assert_eq!(inner.len(), 2, "{inner:?}");
    let unique = rows(&format!("{left} | join {right} on key | project name, ip"));
    assert_eq!(unique.len(), 1, "{unique:?}");
    // A left row whose key matches nothing is dropped by inner joins.
    assert!(
            rows(&format!(
                "resources | where name == 'db-01' | extend key = 'none' | project key | join kind=inner {right} on key"
            ))
            .is_empty()
        );
}

#[test]
fn fullouter_keeps_unmatched_rows_of_both_sides() {
    let found = rows(
        "resources | where type =~ 'microsoft.network/networkinterfaces' | project k = name \
             | join kind=fullouter (resources | where type =~ 'microsoft.network/networkinterfaces' and name == 'web-01-nic' | project k = name, hit = 1) on k \
             | extend hitNull = isnull(hit) | project k, k1, hitNull",
    );
    assert_eq!(
        found,
        [
            json!({ "k": "web-01-nic", "k1": "web-01-nic", "hitNull": false }),
            json!({ "k": "web-01-nic2", "k1": "", "hitNull": true }),
        ]
    );
}

#[test]
fn join_on_different_names_and_several_keys() {
    let found = rows(
        "resources | where type =~ 'microsoft.network/networkinterfaces' | project nicName = name, kind = type \
             | join kind=inner (resources | project name, type) on $left.nicName == $right.name, $left.kind == $right.type \
             | project nicName, name",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0]["nicName"], found[0]["name"]);
}

#[test]
fn unknown_columns_and_tables_are_errors() {
    assert_eq!(
        error_code("resources | join (resources) on nothing"),
        "FailedToResolveColumn"
    );
    assert_eq!(
        error_code("resources | project nothing"),
        "FailedToResolveColumn"
    );
    assert_eq!(
        error_code("resourcecontainers | take 1"),
        "UnsupportedQuery"
    );
    assert_eq!(
        error_code("resources | join (resourcecontainers) on id"),
        "UnsupportedQuery"
    );
    assert_eq!(
        error_code("resources | project name, name"),
        "UnsupportedQuery"
    );
}

#[test]
fn order_limit_and_project_after_joins() {
    assert_eq!(
        rows(
            "resources | where type =~ 'microsoft.network/networkinterfaces' | order by name asc | take 1 | project name"
        ),
        [json!({ "name": "web-01-nic" })]
    );
    assert_eq!(
        rows("resources | project name | order by name | limit 2"),
        [
            json!({ "name": "web-01-nic2" }),
            json!({ "name": "web-01-nic" })
        ]
    );
}

fn names(text: &str) -> Vec<String> {
    match run_on(&TestSource::machines(), text) {
        Ok((_, rows)) => rows
            .iter()
            .map(|row| row["name"].as_str().unwrap_or("?").to_owned())
            .collect(),
        Err(error) => vec![format!("error: {error:?}")],
    }
}

#[test]
fn filters_by_type_and_name_caselessly() {
    assert_eq!(
        names("Resources | where type =~ 'Microsoft.Compute/virtualMachines' and name =~ 'WEB-01'"),
        ["Web-01"]
    );
    assert!(names("resources | where name == 'web-01'").is_empty());
}

#[test]
fn in_lists_and_negations_work() {
    assert_eq!(
        names(
            "Resources | where resourceGroup in~ ('RG-WEB', 'rg-data') | where type !~ 'microsoft.network/networksecuritygroups'"
        ),
        ["api-01", "sql-01"]
    );
    assert_eq!(
        names("Resources | where location !in ('westeurope')"),
        ["sql-01"]
    );
}

#[test]
fn or_and_parentheses_bind_as_in_kql() {
    assert_eq!(
        names(
            "Resources | where (name == 'api-01' or name == 'sql-01') and location == 'westeurope'"
        ),
        ["api-01"]
    );
    assert_eq!(
        names(
            "Resources | where name == 'api-01' or name == 'sql-01' and location == 'westeurope'"
        ),
        ["api-01"]
    );
}

#[test]
fn project_names_paths_with_underscores_and_aliases() {
    let projected = run_on(
        &TestSource::machines(),
        "Resources | where name == 'sql-01' | project name, properties.storageProfile.osDisk.osType, os = tostring(properties['storageProfile'].osDisk.osType)",
    );
    let Ok((_, projected)) = projected else {
        panic!("{projected:?}");
    };
    assert_eq!(
        projected[0],
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
        names(
            "Resources | project id, name, type, location | where type =~ 'Microsoft.Compute/virtualMachines' | limit 2"
        ),
        ["api-01", "sql-01"]
    );
    let error = run_on(
        &TestSource::machines(),
        "Resources | project name | where location == 'westeurope'",
    );
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
        names("Resources | where type =~ 'microsoft.compute/virtualmachines' | order by name"),
        ["sql-01", "api-01", "Web-01"]
    );
    assert_eq!(
        names(
            "Resources | where type =~ 'microsoft.compute/virtualmachines' | order by location asc, name asc"
        ),
        ["sql-01", "Web-01", "api-01"]
    );
    assert_eq!(
        names(
            "Resources | extend missing = properties.none | order by missing asc nulls last, name asc | take 1"
        ),
        ["Web-01"]
    );
}

#[test]
fn string_operators_match_as_documented() {
    assert_eq!(
        names("Resources | where name contains 'NSG'"),
        ["api-01-nsg"]
    );
    assert!(names("Resources | where name contains_cs 'NSG'").is_empty());
    assert_eq!(
        names("Resources | where name startswith 'api'"),
        ["api-01", "api-01-nsg"]
    );
    assert_eq!(names("Resources | where name has 'nsg'"), ["api-01-nsg"]);
    assert!(names("Resources | where name has 'ns'").is_empty());
    assert_eq!(
        names("Resources | where isnotempty(properties.storageProfile.osDisk.osType) | take 1"),
        ["api-01"]
    );
    assert_eq!(
        names("Resources | where properties.count >= 2 and name endswith '-01' | take 1"),
        ["api-01"]
    );
}

#[test]
fn queries_outside_the_subset_are_refused() {
    for query in [
        "Resources | summarize count() by location",
        "ResourceContainers | where type == 'x'",
        "Resources | where name matches regex 'a.*'",
        "Resources | where name == ",
        "Resources | where name == 'unterminated",
        "Resources | project strlen(name)",
        "",
    ] {
        assert!(run_on(&TestSource::machines(), query).is_err(), "{query}");
    }
}

#[test]
fn a_pipeline_needs_the_columns_it_names_until_its_first_project() {
    let needed = |text: &str| match parse(text) {
        Ok(query) => query
            .needed_columns()
            .map(|names| names.into_iter().collect::<Vec<_>>()),
        Err(error) => panic!("{text}: {error:?}"),
    };
    assert_eq!(
        needed("resources | where type =~ 'x' | project id, name | where name == 'y'"),
        Some(vec!["id".to_owned(), "name".to_owned(), "type".to_owned()])
    );
    assert_eq!(
        needed("resources | extend p = properties.a | join (resources) on id | project p"),
        Some(vec![
            "id".to_owned(),
            "p".to_owned(),
            "properties".to_owned()
        ])
    );
    // Without a project, every column reaches the answer.
    assert_eq!(needed("resources | where name == 'y'"), None);
}

#[test]
fn a_join_reads_only_the_right_rows_that_can_match() {
    let source = TestSource::attached();
    let query = format!(
        "resources | where name == 'web-01' \
         | mv-expand nic = properties.networkProfile.networkInterfaces \
         | extend nicId = tolower(tostring(nic.id)) \
         | join kind=leftouter {NICS} on nicId | project nicId, privateIp"
    );
    let result = run_on(&source, &query);
    let Ok((_, found)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(
        found,
        [
            json!({ "nicId": "/s/nics/web-01-nic", "privateIp": "10.0.0.4" }),
            json!({ "nicId": "/s/nics/web-01-nic2", "privateIp": "10.0.1.4" }),
        ]
    );
    // The VM, then only its two NICs (by their ids), not every NIC.
    assert_eq!(source.made(), 3);
}

#[test]
fn a_join_reads_every_right_row_when_a_limit_or_a_computed_key_could_change_matches() {
    for right in [
        "(resources | where type =~ 'microsoft.network/networkinterfaces' | take 5 | project nicId = tolower(id), privateIp = name)",
        "(resources | where type =~ 'microsoft.network/networkinterfaces' | project nicId = strcat(tolower(id), ''), privateIp = name)",
        "(resources | where type =~ 'microsoft.network/networkinterfaces' | extend id = strcat(name, '') | project nicId = tolower(id), privateIp = name)",
    ] {
        let source = TestSource::attached();
        let query = format!(
            "resources | where name == 'web-01' \
             | mv-expand nic = properties.networkProfile.networkInterfaces \
             | extend nicId = tolower(tostring(nic.id)) \
             | join kind=leftouter {right} on nicId | project nicId, privateIp"
        );
        let result = run_on(&source, &query);
        assert!(result.is_ok(), "{right}: {result:?}");
        assert_eq!(
            source.made(),
            3,
            "{right}: the VM, then both NICs through the type index"
        );
    }
}

#[test]
fn the_legacy_mvexpand_is_mv_expand_with_a_limit_of_128() {
    let legacy = rows(
        "resources | where name == 'web-01' | mvexpand nic = properties.networkProfile.networkInterfaces | project n = tostring(nic.id)",
    );
    let current = rows(
        "resources | where name == 'web-01' | mv-expand nic = properties.networkProfile.networkInterfaces | project n = tostring(nic.id)",
    );
    assert_eq!(legacy, current);
    let Ok(query) = parse("resources | mvexpand x = properties.list") else {
        panic!("mvexpand parses");
    };
    let super::ast::Stage::MvExpand(expand) = &query.stages[0] else {
        panic!("{:?}", query.stages);
    };
    assert_eq!(expand.limit, Some(128));
}
