//! `-o json|yaml` prints the API's answer unchanged; the default is a table.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `raw` as JSON or YAML, or `rows` (first row = header) as an aligned table.
pub fn print(format: Format, raw: &Value, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(raw)?),
        Format::Yaml => print!("{}", yaml_serde::to_string(raw)?),
        Format::Table => print!("{}", table(&rows)),
    }
    Ok(())
}

pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r.get(c).map_or(0, |s| s.chars().count())).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::table(&[vec!["NAME".into(), "STAGES".into()], vec!["sockshop".into(), "dev".into()]]);
        assert_eq!(t, "NAME       STAGES\nsockshop   dev\n");
    }
}
