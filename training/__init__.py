"""Training the recurrent encoder–decoder of `hf_seq2seq_rnn` with Accelerate on `datasets` data.

    accelerate launch -m training.train --config training/configs/translation_demo.yaml --output-dir runs/demo

Modules: `data_spec` (what data to read, without `datasets`), `data` (loading and schema
detection to source/target pairs), `demos` (the embedded demo corpora), `prepare` (tokenizer,
tokenization, length-grouped batches), `checkpoints`, `evaluation`, `model_card`, `train` (the
Accelerate loop and the command line).
"""
