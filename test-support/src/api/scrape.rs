//! A `/metrics` page read the way Prometheus reads it: one sample per
//! series, each series a name and its labels.

use std::collections::BTreeMap;

/// One series of a page.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Fetches and parses `url` (a node's `/metrics`).
    pub async fn get(url: &str) -> Self {
        let page = reqwest::get(url)
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap();
        Self::parse(&page)
    }

    /// Parses the text exposition format (as the nodes write it: no
    /// timestamps, label values without escaped quotes).
    pub fn parse(page: &str) -> Self {
        let samples = page
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    other => other.parse().unwrap_or_else(|_| panic!("value of {line}")),
                };
                let (name, labels) = match series.split_once('{') {
                    None => (series, BTreeMap::new()),
                    Some((name, rest)) => {
                        let rest = rest.strip_suffix('}').expect("labels end with }");
                        let labels = rest
                            .split("\",")
                            .filter(|pair| !pair.is_empty())
                            .map(|pair| {
                                let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                                (key.to_owned(), value.trim_end_matches('"').to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                };
                Sample {
                    name: name.to_owned(),
                    labels,
                    value,
                }
            })
            .collect();
        Self { samples }
    }

    /// The samples of `name` carrying (at least) these labels.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The samples of these metrics as text, for assertion messages.
    pub fn show(&self, names: &[&str]) -> String {
        self.samples
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The sum of those samples, as `sum(name{labels})` would answer;
    /// panics when there is no such series (a metric that is not
    /// registered is a finding in itself).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut found = self.matching(name, labels).peekable();
        assert!(
            found.peek().is_some(),
            "no series {name}{labels:?} in /metrics"
        );
        found.map(|s| s.value).sum()
    }
}
