"""Drives a running `workly serve` with the official `openai` client.

Usage: python openai_client.py BASE_URL
Prints one JSON object with what the client saw; the Rust test checks it.
"""

import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)
seen = {}

models = client.models.list()
seen["models"] = [model.id for model in models.data]

whole = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello in three words."}],
    max_tokens=8,
    temperature=0,
)
seen["whole"] = {
    "model": whole.model,
    "text": whole.choices[0].message.content,
    "finish_reason": whole.choices[0].finish_reason,
    "usage": whole.usage.model_dump(),
}

chunks = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello in three words."}],
    max_tokens=8,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
text, finish, usage, count = "", None, None, 0
for chunk in chunks:
    count += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
seen["stream"] = {"text": text, "finish_reason": finish, "usage": usage, "chunks": count}

try:
    client.chat.completions.create(model="x", messages=[])
    seen["error"] = None
except openai.BadRequestError as error:
    seen["error"] = {"status": error.status_code, "message": error.message}

print(json.dumps(seen))
