"""The page's words in English and Korean, picked in the browser by its locale (Gradio's i18n).

Gradio translates static text only: labels, placeholders, button and Markdown values set when the
page is built. Text that a request returns (notices, errors, the model description after a change)
stays in English. Pass `PAGE_I18N` to `launch(i18n=...)`; any other locale falls back to English.
"""

from __future__ import annotations

import gradio as gr

PAGE_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "intro": (
            "A recurrent encoder–decoder with attention. Pick a model, type a message, and see which "
            "source tokens each output token attended to."
        ),
        "model": "Model",
        "decoding": "Decoding",
        "mode": "Mode",
        "mode_info": "greedy and sample stream token by token; beam shows the finished reply",
        "num_beams": "Beam size (beam)",
        "temperature": "Temperature (sample)",
        "top_p": "Top-p (sample)",
        "max_new_tokens": "Max new tokens",
        "chat_tab": "Chat",
        "conversation": "Conversation",
        "message": "Message",
        "message_placeholder": "Type a message and press Enter",
        "send": "Send",
        "clear": "Clear conversation",
        "example_prompts": "Example prompts",
        "translate_tab": "Translate",
        "source": "Text to translate",
        "source_placeholder": "Type a sentence and press Enter",
        "translate": "Translate",
        "translation": "Translation",
        "example_sentences": "Example sentences",
        "notice": "Notice",
        "heatmap_help": (
            "The heatmap shows the last reply: source tokens across, output tokens down. "
            "Hover a cell to read its weight."
        ),
        "heatmap": "Attention heatmap",
        "downloads": "Download the attention (JSON, CSV)",
        "attention_data_section": "Attention data (JSON)",
        "attention_data": "Attention data",
    },
    "ko": {
        "intro": (
            "어텐션을 쓰는 순환 인코더–디코더입니다. 모델을 고르고 메시지를 입력하면, 출력 토큰마다 "
            "어느 입력 토큰에 주목했는지 볼 수 있습니다."
        ),
        "model": "모델",
        "decoding": "디코딩",
        "mode": "방식",
        "mode_info": "greedy와 sample은 토큰마다 바로 보여 주고, beam은 완성된 답을 보여 줍니다",
        "num_beams": "빔 크기 (beam)",
        "temperature": "온도 (sample)",
        "top_p": "Top-p (sample)",
        "max_new_tokens": "최대 생성 토큰 수",
        "chat_tab": "대화",
        "conversation": "대화 내용",
        "message": "메시지",
        "message_placeholder": "메시지를 입력하고 Enter를 누르세요",
        "send": "보내기",
        "clear": "대화 지우기",
        "example_prompts": "예시 질문",
        "translate_tab": "번역",
        "source": "번역할 문장",
        "source_placeholder": "문장을 입력하고 Enter를 누르세요",
        "translate": "번역하기",
        "translation": "번역 결과",
        "example_sentences": "예시 문장",
        "notice": "알림",
        "heatmap_help": (
            "히트맵은 마지막 답의 어텐션입니다. 가로는 입력 토큰, 세로는 출력 토큰이며, "
            "칸에 마우스를 올리면 가중치가 보입니다."
        ),
        "heatmap": "어텐션 히트맵",
        "downloads": "어텐션 내려받기 (JSON, CSV)",
        "attention_data_section": "어텐션 데이터 (JSON)",
        "attention_data": "어텐션 데이터",
    },
}

PAGE_I18N = gr.I18n(**PAGE_TEXT)

__all__ = ["PAGE_I18N", "PAGE_TEXT"]
