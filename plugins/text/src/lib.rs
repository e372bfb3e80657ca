//! Text nodes: `template` (Jinja templates via minijinja), `split` (chunking for RAG via
//! text-splitter) and `regex-extract`.

use std::collections::BTreeMap;

use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, Node, Serialize, Value};

/// Configuration of `template`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// A Jinja template, e.g. `Hello {{ name | title }}!`.
    pub template: String,
}

/// Inputs of `template`.
#[derive(Deserialize, JsonSchema)]
pub struct TemplateInputs {
    /// Variables available to the template.
    #[serde(default)]
    pub data: BTreeMap<String, Value>,
}

/// Outputs of `template`.
#[derive(Serialize, JsonSchema)]
pub struct TextOutput {
    /// The rendered text.
    pub text: String,
}

/// Renders a Jinja template.
pub struct Template;

impl Node for Template {
    const NAME: &'static str = "template";
    const TITLE: &'static str = "Text template";
    const DESCRIPTION: &'static str = "Renders a Jinja template with the input data.";
    const CATEGORY: &'static str = "text";
    type Config = TemplateConfig;
    type Inputs = TemplateInputs;
    type Outputs = TextOutput;

    fn run(
        config: TemplateConfig,
        inputs: TemplateInputs,
        _ctx: &Context,
    ) -> Result<TextOutput, Error> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let text = env
            .render_str(&config.template, minijinja::value::Serde(&inputs.data))
            .map_err(|e| Error::invalid_input(format!("template: {e}")))?;
        Ok(TextOutput { text })
    }
}

/// Configuration of `split`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Maximum characters per chunk.
    #[schemars(range(min = 1))]
    pub chunk_size: usize,
    /// Characters shared by consecutive chunks; less than `chunk_size`.
    #[serde(default)]
    pub overlap: usize,
}

/// Inputs of `split`.
#[derive(Deserialize, JsonSchema)]
pub struct SplitInputs {
    /// The document to chunk.
    pub text: String,
}

/// Outputs of `split`.
#[derive(Serialize, JsonSchema)]
pub struct SplitOutputs {
    /// Chunks in document order, split at the largest semantic unit that fits
    /// (paragraph, sentence, word, character).
    pub chunks: Vec<String>,
    /// Number of chunks.
    pub count: usize,
}

/// Splits text into overlapping chunks for embedding.
pub struct Split;

impl Node for Split {
    const NAME: &'static str = "split";
    const TITLE: &'static str = "Text splitter";
    const DESCRIPTION: &'static str =
        "Splits a document into chunks of at most `chunk_size` characters for RAG.";
    const CATEGORY: &'static str = "text";
    type Config = SplitConfig;
    type Inputs = SplitInputs;
    type Outputs = SplitOutputs;

    fn run(
        config: SplitConfig,
        inputs: SplitInputs,
        _ctx: &Context,
    ) -> Result<SplitOutputs, Error> {
        if config.chunk_size == 0 {
            return Err(Error::invalid_input("chunk_size must be at least 1"));
        }
        let chunk_config = text_splitter::ChunkConfig::new(config.chunk_size)
            .with_overlap(config.overlap)
            .map_err(|e| Error::invalid_input(format!("overlap: {e}")))?;
        let splitter = text_splitter::TextSplitter::new(chunk_config);
        let chunks: Vec<String> = splitter.chunks(&inputs.text).map(str::to_owned).collect();
        Ok(SplitOutputs {
            count: chunks.len(),
            chunks,
        })
    }
}

/// Configuration of `regex-extract`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// Regular expression (Rust `regex` syntax); named groups `(?P<name>...)` are reported
    /// by name.
    pub pattern: String,
}

/// Inputs of `regex-extract`.
#[derive(Deserialize, JsonSchema)]
pub struct RegexInputs {
    /// Text to search.
    pub text: String,
}

/// One match.
#[derive(Serialize, JsonSchema)]
pub struct Match {
    /// The whole matched text.
    pub text: String,
    /// Byte offset of the match start.
    pub start: usize,
    /// Numbered capture groups (group 1 first); null where a group did not take part.
    pub groups: Vec<Option<String>>,
    /// Named capture groups.
    pub named: BTreeMap<String, Option<String>>,
}

/// Outputs of `regex-extract`.
#[derive(Serialize, JsonSchema)]
pub struct RegexOutputs {
    /// Every non-overlapping match, in order.
    pub matches: Vec<Match>,
    /// The first match's text, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
}

/// Extracts matches and capture groups.
pub struct RegexExtract;

impl Node for RegexExtract {
    const NAME: &'static str = "regex-extract";
    const TITLE: &'static str = "Regex extract";
    const DESCRIPTION: &'static str = "Finds every match of a regular expression, with groups.";
    const CATEGORY: &'static str = "text";
    type Config = RegexConfig;
    type Inputs = RegexInputs;
    type Outputs = RegexOutputs;

    fn run(
        config: RegexConfig,
        inputs: RegexInputs,
        _ctx: &Context,
    ) -> Result<RegexOutputs, Error> {
        let re = regex::Regex::new(&config.pattern)
            .map_err(|e| Error::invalid_input(format!("pattern: {e}")))?;
        let names: Vec<Option<&str>> = re.capture_names().collect();
        let matches: Vec<Match> = re
            .captures_iter(&inputs.text)
            .map(|caps| {
                let whole = caps.get(0).expect("group 0 always participates");
                let group = |i: usize| caps.get(i).map(|m| m.as_str().to_owned());
                Match {
                    text: whole.as_str().to_owned(),
                    start: whole.start(),
                    groups: (1..caps.len()).map(group).collect(),
                    named: names
                        .iter()
                        .enumerate()
                        .filter_map(|(i, n)| n.map(|n| (n.to_owned(), group(i))))
                        .collect(),
                }
            })
            .collect();
        let first = matches.first().map(|m| m.text.clone());
        Ok(RegexOutputs { matches, first })
    }
}

hyyve_sdk::export_nodes!(Template, Split, RegexExtract);
