"""Drives `workly serve`'s audio endpoints with the official `openai` client.

Usage: python openai_audio.py BASE_URL DIR
Speaks a sentence in English (an OpenAI voice name) and in French (Kira's
French voice by name) into DIR, transcribes each back, and asks for a format
Workly does not write. Prints one JSON object with what the client saw.
"""

import json
import pathlib
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)
out = pathlib.Path(sys.argv[2])
seen = {}

for language, voice, text in [
    ("en", "alloy", "The weather is lovely today, so we could go for a walk by the river."),
    ("fr", "siwis", "Il fait beau aujourd'hui, alors nous pourrions marcher au bord de la rivière."),
]:
    path = out / f"{language}.wav"
    speech = client.audio.speech.create(model="tts-1", voice=voice, input=text)
    speech.write_to_file(path)
    with path.open("rb") as audio:
        heard = client.audio.transcriptions.create(model="whisper-1", file=audio, language=language)
    seen[language] = {"said": text, "heard": heard.text, "bytes": path.stat().st_size}

try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="Hello", response_format="mp3")
except openai.BadRequestError as error:
    seen["mp3"] = {"status": error.status_code, "param": error.body.get("param")}

print(json.dumps(seen))
