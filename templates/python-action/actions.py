"""Your actions: each a plain function declared with @action, with the JSON Schemas of its input
and output (task definitions are checked against them before anything is launched)."""

from faas_action import action, serve


@action(
    version="1.0.0",
    input_schema={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    output_schema={"type": "object", "properties": {"words": {"type": "integer"}}},
)
def count_words(input, ctx):
    # ctx.key is the same for every attempt of one step: use it to make an effect happen once
    # (the helper already runs this function once per key in this worker).
    return {"words": len(input["text"].split())}


if __name__ == "__main__":
    serve()
