//! Aligned columns, the way every table of `jit` is printed.

/// Aligned columns: every column but the last padded to its widest cell, two spaces
/// apart.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: Vec<&'static str>) -> Self {
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as lines.
    pub fn render(&self) -> String {
        let header_row: Vec<String> = self.headers.iter().map(|&text| text.to_owned()).collect();
        let all: Vec<&Vec<String>> = std::iter::once(&header_row).chain(&self.rows).collect();
        let columns = all.iter().map(|row| row.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                all.iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        all.iter()
            .map(|row| {
                let mut line = String::new();
                for (column, cell) in row.iter().enumerate() {
                    if column > 0 {
                        line.push_str("  ");
                    }
                    line.push_str(cell);
                    let width = widths.get(column).copied().unwrap_or(0);
                    if column + 1 < row.len() {
                        line.extend(std::iter::repeat_n(
                            ' ',
                            width.saturating_sub(cell.chars().count()),
                        ));
                    }
                }
                line.trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
