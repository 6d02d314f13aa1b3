"""Pieces that training, the chatbot and the benchmarks share, above the model package and below them.

- `generation`: `generate_texts`, the one path from texts to generated texts (batched, in
  length-sorted order, any `generate()` setting, optionally with attention maps).
- `tasks`: the task names (`translation`, `qa`), their Hub pipeline tags, and reading a saved
  model's task back from its files.
- `attention`: attention maps of generated text and their heatmaps (matplotlib, imported lazily).
- `ensemble`: `load_ensemble`, several models loaded to decode as one (their log-probabilities
  averaged at each step: `hf_seq2seq_rnn.ensemble_seq2seq_rnn.Seq2SeqRNNEnsemble`).
- `options`: command-line options declared once as dataclass fields, and the one parser of every
  command (`OptionParser`: a bad flag is one line and exit code 2); `decoding_options`: the decoding
  settings as options, declared once for predict, the chatbot and training; `decoding`: those
  settings on top of a model's generation config.
- `loading`: `load_model` (int8 on request), `load_model_and_tokenizer`, `load_config`,
  `load_tokenizer`, the one way a saved model is loaded: ours with the installed classes, never the
  Python files that come with it; and `read_training_info`, the one reader of `training_info.json`.

Dependencies run one way: `hf_seq2seq_rnn` <- `seq2seq_tools` <- `training`, `chatbot` <- `benchmarks`;
`training` and `chatbot` never import each other.
"""
