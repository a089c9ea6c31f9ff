//! The report as a list of blocks, rendered once as Markdown and once as self-contained
//! HTML, so both say exactly the same thing.

use super::table::{escape, Table};

/// A piece of the report. Text is plain (no Markdown markup).
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// Level 1 to 3.
    Heading(u8, String),
    Paragraph(String),
    List(Vec<String>),
    /// Preformatted text shown as is (the study's spec).
    Code(String),
    Table(Table),
    /// A figure: caption, file stem under `figures/`, SVG text.
    Figure {
        title: String,
        name: String,
        svg: String,
    },
}

/// The Markdown text; tables and figures link to their files under `tables/` and
/// `figures/`.
pub fn to_markdown(blocks: &[Block]) -> String {
    let parts: Vec<String> = blocks.iter().map(markdown_block).collect();
    parts.join("\n")
}

fn markdown_block(block: &Block) -> String {
    match block {
        Block::Heading(level, text) => {
            format!(
                "{} {}\n",
                "#".repeat(usize::from((*level).clamp(1, 6))),
                one_line(text)
            )
        }
        Block::Paragraph(text) => format!("{}\n", one_line(text)),
        Block::List(items) => items
            .iter()
            .map(|i| format!("- {}\n", one_line(i)))
            .collect(),
        Block::Code(text) => {
            // A fence longer than any run of backticks in the text.
            let fence = "`".repeat(3 + longest_backtick_run(text));
            format!("{fence}toml\n{}\n{fence}\n", text.trim_end())
        }
        Block::Table(t) => format!(
            "**{}** ([CSV](tables/{n}.csv), [JSON](tables/{n}.json))\n\n{}",
            one_line(&t.title),
            t.to_markdown(),
            n = t.name
        ),
        Block::Figure { title, name, .. } => format!(
            "![{t}](figures/{name}.svg)\n\n*{t}* ([PNG](figures/{name}.png))\n",
            t = one_line(title).replace(['[', ']'], "")
        ),
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;max-width:1100px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}\
caption{text-align:left;font-weight:bold;padding:.3em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
figcaption{font-size:.9em;color:#555}\
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}";

/// A self-contained HTML page: inline CSS, tables, and the figures as inline `<svg>`;
/// nothing is fetched from anywhere.
pub fn to_html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for block in blocks {
        out += &html_block(block);
    }
    out + "</body>\n</html>\n"
}

fn html_block(block: &Block) -> String {
    match block {
        Block::Heading(level, text) => {
            let l = (*level).clamp(1, 6);
            format!("<h{l}>{}</h{l}>\n", escape(text))
        }
        Block::Paragraph(text) => format!("<p>{}</p>\n", escape(text)),
        Block::List(items) => {
            let li: String = items
                .iter()
                .map(|i| format!("<li>{}</li>\n", escape(i)))
                .collect();
            format!("<ul>\n{li}</ul>\n")
        }
        Block::Code(text) => format!("<pre><code>{}</code></pre>\n", escape(text.trim_end())),
        Block::Table(t) => t.to_html(),
        Block::Figure { title, svg, .. } => format!(
            "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>\n",
            escape(title)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_show_the_same_blocks() {
        let blocks = vec![
            Block::Heading(2, "A & B".into()),
            Block::List(vec!["one".into()]),
            Block::Code("a = \"<b>\"".into()),
            Block::Figure {
                title: "F".into(),
                name: "f".into(),
                svg: "<svg></svg>".into(),
            },
        ];
        assert_eq!(
            to_markdown(&blocks),
            "## A & B\n\n- one\n\n```toml\na = \"<b>\"\n```\n\n![F](figures/f.svg)\n\n*F* ([PNG](figures/f.png))\n"
        );
        let html = to_html("T", &blocks);
        assert!(html.contains("<h2>A &amp; B</h2>"));
        assert!(html.contains("<pre><code>a = &quot;&lt;b&gt;&quot;</code></pre>"));
        assert!(html.contains("<figure>\n<svg></svg><figcaption>F</figcaption>"));
    }
}
