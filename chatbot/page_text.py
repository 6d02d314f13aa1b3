"""The page's words in English and Korean, picked in the browser by its locale (Gradio's i18n).

The English text is the translation key: where the browser's locale has no translation, the page
shows the key, so it falls back to English rather than to key names. (Gradio's page applies custom
translations from 6.6.0 on, the floor in pyproject.toml.)

Gradio translates static text only: labels, placeholders, button and Markdown values set when the
page is built. Text that a request returns (notices, errors, the model description after a change)
stays in English. Pass `PAGE_I18N` to `launch(i18n=...)`.
"""

from __future__ import annotations

import gradio as gr

KOREAN: dict[str, str] = {
    "A recurrent encoder–decoder with attention. Pick a model, type a message, and see which source tokens each output token attended to.": "어텐션을 쓰는 순환 인코더–디코더입니다. 모델을 고르고 메시지를 입력하면, 출력 토큰마다 어느 입력 토큰에 주목했는지 볼 수 있습니다.",
    "Model": "모델",
    "Decoding": "디코딩",
    "Mode": "방식",
    "greedy and sample stream token by token; beam shows the finished reply": "greedy와 sample은 토큰마다 바로 보여 주고, beam은 완성된 답을 보여 줍니다",
    "Beam size (beam)": "빔 크기 (beam)",
    "Temperature (sample)": "온도 (sample)",
    "Top-p (sample)": "Top-p (sample)",
    "Max new tokens": "최대 생성 토큰 수",
    "Chat": "대화",
    "Conversation": "대화 내용",
    "Message": "메시지",
    "Type a message and press Enter": "메시지를 입력하고 Enter를 누르세요",
    "Send": "보내기",
    "Clear conversation": "대화 지우기",
    "Example prompts": "예시 질문",
    "Text to translate": "번역할 문장",
    "Type a sentence and press Enter": "문장을 입력하고 Enter를 누르세요",
    "Translate": "번역",
    "Translation": "번역 결과",
    "Example sentences": "예시 문장",
    "Notice": "알림",
    "The heatmap shows the last reply: source tokens across, output tokens down. Hover a cell to read its weight.": "히트맵은 마지막 답의 어텐션입니다. 가로는 입력 토큰, 세로는 출력 토큰이며, 칸에 마우스를 올리면 가중치가 보입니다.",
    "Attention heatmap": "어텐션 히트맵",
    "Download the attention (JSON, CSV)": "어텐션 내려받기 (JSON, CSV)",
    "Attention data (JSON)": "어텐션 데이터 (JSON)",
    "Attention data": "어텐션 데이터",
    "Compare": "비교",
    "Decode one input with two to four models, all with the decoding settings on the left, and compare their outputs and attention.": "입력 하나를 모델 두 개에서 네 개까지로, 모두 왼쪽의 같은 디코딩 설정으로 풀어 출력과 어텐션을 나란히 비교합니다.",
    "Models to compare": "비교할 모델",
    "Input": "입력",
    "Example inputs": "예시 입력",
    "Attention heatmaps (one colour scale)": "어텐션 히트맵 (같은 색 척도)",
    "Comparison data (JSON)": "비교 데이터 (JSON)",
    "Comparison data": "비교 데이터",
}

PAGE_I18N = gr.I18n(en={english: english for english in KOREAN}, ko=KOREAN)

__all__ = ["KOREAN", "PAGE_I18N"]
