"""hf-seq2seq-rnn: the recurrent encoder–decoder with attention as a Hugging Face model.

Importing the package registers the model with `AutoConfig`, `AutoModel` and
`AutoModelForSeq2SeqLM`, and marks the classes so that `save_pretrained` copies their code and
writes `auto_map`: a saved directory then loads anywhere with `trust_remote_code=True`. It also
registers the "seq2seq-rnn" pipeline task, which a saved directory offers to remote code as well, and
marks the morpheme tokenizer so that its code is saved beside it (`AutoTokenizer`, remote code).

`__version__` is the release, defined once in `configuration_seq2seq_rnn.py` (pyproject.toml reads
it there); `save_pretrained` records it in config.json as `seq2seq_rnn_version`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_seq2seq_rnn import (
    ATTENTION_TYPES,
    CELL_TYPES,
    PIPELINE_TASK,
    SEQ2SEQ_RNN_VERSION,
    VERSION_KEY,
    Seq2SeqRNNConfig,
)
from .ensemble_seq2seq_rnn import Seq2SeqRNNEnsemble
from .modeling_seq2seq_rnn import (
    Seq2SeqRNNEncoderOutput,
    Seq2SeqRNNForConditionalGeneration,
    Seq2SeqRNNModel,
    Seq2SeqRNNPreTrainedModel,
    Seq2SeqRNNState,
)
from .pipeline_seq2seq_rnn import Seq2SeqRNNPipeline
from .protocol_seq2seq_rnn import DecodingModel
from .tokenization_seq2seq_rnn import Seq2SeqRNNMorphemeTokenizer, train_tokenizer

__version__ = SEQ2SEQ_RNN_VERSION

AutoConfig.register(Seq2SeqRNNConfig.model_type, Seq2SeqRNNConfig, exist_ok=True)
AutoModel.register(Seq2SeqRNNConfig, Seq2SeqRNNModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, exist_ok=True)
Seq2SeqRNNConfig.register_for_auto_class()
Seq2SeqRNNModel.register_for_auto_class("AutoModel")
Seq2SeqRNNForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
Seq2SeqRNNMorphemeTokenizer.register_for_auto_class("AutoTokenizer")
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK, pipeline_class=Seq2SeqRNNPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
)

__all__ = [
    "ATTENTION_TYPES",
    "CELL_TYPES",
    "PIPELINE_TASK",
    "SEQ2SEQ_RNN_VERSION",
    "VERSION_KEY",
    "DecodingModel",
    "Seq2SeqRNNConfig",
    "Seq2SeqRNNEnsemble",
    "Seq2SeqRNNEncoderOutput",
    "Seq2SeqRNNForConditionalGeneration",
    "Seq2SeqRNNModel",
    "Seq2SeqRNNMorphemeTokenizer",
    "Seq2SeqRNNPipeline",
    "Seq2SeqRNNPreTrainedModel",
    "Seq2SeqRNNState",
    "train_tokenizer",
]
