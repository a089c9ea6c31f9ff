//! A table of strings and its four renderings: Markdown, CSV, JSON and HTML.
//!
//! Cells are already formatted (see [`super::format`]); every rendering shows the same text,
//! so the Markdown report, the HTML report and the data files never disagree.

use std::fmt::Write;

/// A titled table; `name` is the file stem of its CSV and JSON files.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub title: String,
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(title: impl Into<String>, name: impl Into<String>, columns: &[&str]) -> Self {
        Table {
            title: title.into(),
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The same table with only the named columns, in the order given (names it does not
    /// have are skipped).
    pub fn with_columns(&self, keep: &[&str]) -> Table {
        let picked: Vec<usize> = keep
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| c == k))
            .collect();
        Table {
            title: self.title.clone(),
            name: self.name.clone(),
            columns: picked.iter().map(|&c| self.columns[c].clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| {
                    picked
                        .iter()
                        .map(|&c| Self::cell(r, c).to_string())
                        .collect()
                })
                .collect(),
        }
    }

    /// The cell of `row` in column `c`, empty where the row is short.
    fn cell(row: &[String], c: usize) -> &str {
        row.get(c).map_or("", String::as_str)
    }

    /// Width in characters of each column (header and cells).
    fn widths(&self) -> Vec<usize> {
        (0..self.columns.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| md_cell(Self::cell(r, c)).chars().count())
                    .chain([md_cell(&self.columns[c]).chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect()
    }

    /// A GitHub-flavoured Markdown table with the pipes aligned (widths in characters).
    pub fn to_markdown(&self) -> String {
        let widths = self.widths();
        let line = |cells: Vec<String>| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, &w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = line(self.columns.iter().map(|c| md_cell(c)).collect());
        out += &line(widths.iter().map(|&w| "-".repeat(w)).collect());
        for row in &self.rows {
            out += &line(
                (0..self.columns.len())
                    .map(|c| md_cell(Self::cell(row, c)))
                    .collect(),
            );
        }
        out
    }

    /// RFC 4180 CSV: CRLF line ends; a field holding a comma, quote, CR or LF is quoted,
    /// its quotes doubled.
    pub fn to_csv(&self) -> String {
        let line = |cells: Vec<&str>| -> String {
            let fields: Vec<String> = cells.into_iter().map(csv_field).collect();
            format!("{}\r\n", fields.join(","))
        };
        let mut out = line(self.columns.iter().map(String::as_str).collect());
        for row in &self.rows {
            out += &line(
                (0..self.columns.len())
                    .map(|c| Self::cell(row, c))
                    .collect(),
            );
        }
        out
    }

    /// A JSON array with one object per row, keys in column order; a cell that is a plain
    /// decimal number is written as a number, anything else as a string.
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, row) in self.rows.iter().enumerate() {
            out += if i == 0 { "\n  {" } else { ",\n  {" };
            for (c, column) in self.columns.iter().enumerate() {
                let sep = if c == 0 { "" } else { ", " };
                let _ = write!(
                    out,
                    "{sep}{}: {}",
                    json_string(column),
                    json_value(Self::cell(row, c))
                );
            }
            out += "}";
        }
        out += if self.rows.is_empty() { "]\n" } else { "\n]\n" };
        out
    }

    /// An HTML `<table>` with the title as caption; text is escaped.
    pub fn to_html(&self) -> String {
        let mut out = format!(
            "<table>\n<caption>{}</caption>\n<thead><tr>",
            escape(&self.title)
        );
        for c in &self.columns {
            let _ = write!(out, "<th>{}</th>", escape(c));
        }
        out += "</tr></thead>\n<tbody>\n";
        for row in &self.rows {
            out += "<tr>";
            for c in 0..self.columns.len() {
                let _ = write!(out, "<td>{}</td>", escape(Self::cell(row, c)));
            }
            out += "</tr>\n";
        }
        out += "</tbody>\n</table>\n";
        out
    }
}

/// A Markdown cell: pipes escaped, line breaks as spaces.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A number when the cell is one in JSON's own syntax (so `+1.5`, `1e3.`, `inf` stay text).
fn json_value(s: &str) -> String {
    let is_json_number = !s.is_empty()
        && !s.starts_with('+')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.chars().all(|c| c.is_ascii_digit() || "-.eE".contains(c))
        && s.parse::<f64>().is_ok_and(f64::is_finite)
        && serde_json::from_str::<serde_json::Number>(s).is_ok();
    if is_json_number {
        s.to_string()
    } else {
        json_string(s)
    }
}

/// Escapes text for HTML and XML (`&`, `<`, `>`, `"`, `'`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new("Sample", "sample", &["name", "value"]);
        t.rows.push(vec!["a, b".into(), "1.50".into()]);
        t.rows.push(vec!["say \"hi\"".into(), "+2".into()]);
        t.rows.push(vec!["x|y".into(), "—".into()]);
        t
    }

    #[test]
    fn csv_quotes_commas_and_doubles_quotes() {
        assert_eq!(
            sample().to_csv(),
            "name,value\r\n\"a, b\",1.50\r\n\"say \"\"hi\"\"\",+2\r\nx|y,—\r\n"
        );
    }

    #[test]
    fn markdown_pads_cells_to_aligned_pipes_and_escapes_pipes() {
        assert_eq!(
            sample().to_markdown(),
            "| name     | value |\n\
             | -------- | ----- |\n\
             | a, b     | 1.50  |\n\
             | say \"hi\" | +2    |\n\
             | x\\|y     | —     |\n"
        );
    }

    #[test]
    fn json_writes_numbers_as_numbers_and_the_rest_as_strings() {
        assert_eq!(
            sample().to_json(),
            "[\n  {\"name\": \"a, b\", \"value\": 1.50},\n  {\"name\": \"say \\\"hi\\\"\", \
             \"value\": \"+2\"},\n  {\"name\": \"x|y\", \"value\": \"—\"}\n]\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(parsed[0]["value"], serde_json::json!(1.5));
    }

    #[test]
    fn html_escapes_cell_text() {
        let mut t = Table::new("A <b>", "a", &["x"]);
        t.rows.push(vec!["1 & 2".into()]);
        let html = t.to_html();
        assert!(html.contains("<caption>A &lt;b&gt;</caption>"));
        assert!(html.contains("<td>1 &amp; 2</td>"));
    }
}
