"""Tiny random checkpoints of every architecture the HF audio-classification guide lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
# 32 channels, not 16: torch 2.13's oneDNN gets bfloat16 Conv1d wrong for 16 or 24 channels with kernel = stride
# = 4 on an Intel Xeon with AMX (relative error ~1, float32 fine; the real checkpoints' 512 channels are right)
CONV = dict(
    conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
)


def _waveform_extractor(attention_mask: bool = False) -> Any:
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
        return_attention_mask=attention_mask,
    )


def _wav2vec2_family(config_name: str, **extra: Any) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        import transformers

        config = getattr(transformers, config_name)(**SMALL, **CONV, **extra)
        return config, _waveform_extractor(attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer")
    return build


def _ast() -> tuple[Any, Any]:
    from transformers import ASTConfig, ASTFeatureExtractor

    config = ASTConfig(**SMALL, patch_size=8, frequency_stride=8, time_stride=8, num_mel_bins=16, max_length=64)
    return config, ASTFeatureExtractor(num_mel_bins=16, max_length=64)


def _whisper() -> tuple[Any, Any]:
    from transformers import WhisperConfig, WhisperFeatureExtractor

    config = WhisperConfig(
        vocab_size=100, num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_source_positions=1500, max_target_positions=32, classifier_proj_size=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    return config, WhisperFeatureExtractor(feature_size=16)


def _wav2vec2_bert() -> tuple[Any, Any]:
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig

    config = Wav2Vec2BertConfig(**SMALL, feature_projection_input_dim=32, output_hidden_size=32)
    return config, SeamlessM4TFeatureExtractor(feature_size=16, num_mel_bins=16, stride=2)


BUILDERS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "audio-spectrogram-transformer": _ast,
    "data2vec-audio": _wav2vec2_family("Data2VecAudioConfig"),
    "hubert": _wav2vec2_family("HubertConfig"),
    "sew": _wav2vec2_family("SEWConfig", squeeze_factor=2),
    "sew-d": _wav2vec2_family("SEWDConfig", squeeze_factor=2, position_buckets=8, max_position_embeddings=64),
    "unispeech": _wav2vec2_family("UniSpeechConfig"),
    "unispeech-sat": _wav2vec2_family("UniSpeechSatConfig"),
    "wav2vec2": _wav2vec2_family("Wav2Vec2Config"),
    "wav2vec2-bert": _wav2vec2_bert,
    "wav2vec2-conformer": _wav2vec2_family("Wav2Vec2ConformerConfig"),
    "wavlm": _wav2vec2_family("WavLMConfig"),
    "whisper": _whisper,
}


def save_tiny(kind: str, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Build a random tiny model of `kind` and save it like a Hub checkpoint (model + extractor)."""
    from transformers import AutoModelForAudioClassification

    config, extractor = BUILDERS[kind]()
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(config).to(dtype)
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder
