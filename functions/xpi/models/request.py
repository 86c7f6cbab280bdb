"""The inference request contract, version 1 (JSON Schema: functions/xpi/schemas/request.v1.schema.json).

Producers put one of these on the requests queue, one per line in a batch file, or in the body of the
API's submit and invoke routes. Limits are part of the contract and enforced here.
"""

import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# A request id doubles as the Step Functions execution name: at most 80 characters of this alphabet.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$"
MAX_REQUEST_BYTES = 200_000  # below SQS (256 KiB) and Step Functions (256 KiB) payload limits
MAX_MESSAGES = 100
MAX_CONTENT_BLOCKS = 20
MAX_TEXT_CHARS = 150_000
MAX_TAGS = 10
MAX_SYSTEM_PROMPTS = 4
MAX_REPLY_FIELDS = 10

RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaSource(_Strict):
    bytes: str | None = Field(None, description="base64 content")
    s3Location: dict[str, str] | None = None


class ImageBlock(_Strict):
    format: Literal["png", "jpeg", "gif", "webp"]
    source: MediaSource


class DocumentBlock(_Strict):
    format: Literal["pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"]
    name: ShortText
    source: MediaSource


class ToolUseBlock(_Strict):
    toolUseId: ShortText
    name: ShortText
    input: dict[str, Any]


class ToolResultBlock(_Strict):
    toolUseId: ShortText
    content: list[dict[str, Any]]
    status: Literal["success", "error"] | None = None


class CachePoint(_Strict):
    """A Bedrock prompt-caching checkpoint: the prefix up to here may be cached by Bedrock (Converse
    `cachePoint`), its tokens then billed at the cache read or write price."""

    type: Literal["default"] = "default"


class SystemCachePoint(_Strict):
    """A cache point among the system prompts: `{"cachePoint": {"type": "default"}}`."""

    cachePoint: CachePoint


class ContentBlock(_Strict):
    """One Converse content block: exactly one of its fields is set."""

    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    image: ImageBlock | None = None
    document: DocumentBlock | None = None
    toolUse: ToolUseBlock | None = None
    toolResult: ToolResultBlock | None = None
    cachePoint: CachePoint | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        set_fields = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_fields) != 1:
            raise ValueError(
                f"a content block must have exactly one of text, image, document, toolUse, "
                f"toolResult, cachePoint; this one has {set_fields or 'none'}"
            )
        return self


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: Annotated[list[ContentBlock], Field(min_length=1, max_length=MAX_CONTENT_BLOCKS)]


MAX_OUTPUT_TOKENS = 64_000


class InferenceSettings(_Strict):
    max_tokens: Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS)] = 1024
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    stop_sequences: Annotated[list[ShortText], Field(max_length=4)] = []


MAX_CACHE_TTL_S = 24 * 3600


class ResponseCacheOption(_Strict):
    """Opt-in exact-match response cache: an identical request (after redaction, to the same model,
    under the same policy) within `ttl_s` seconds is answered from the cache, without a Bedrock call.
    Only for deterministic requests (Converse with `inference.temperature` 0)."""

    ttl_s: Annotated[int, Field(ge=1, le=MAX_CACHE_TTL_S)]


class CallerMetadata(_Strict):
    project: ShortText | None = None
    cost_centre: ShortText | None = None
    tags: Annotated[dict[ShortText, ShortText], Field(max_length=MAX_TAGS)] = {}


class InferenceRequest(_Strict):
    """What a producer asks for. Either `messages` (Converse) or `prompt`, or a native `body` with
    `api: invoke_model` for model families whose request body Converse does not cover."""

    version: Literal["1"] = "1"
    request_id: RequestId = Field(default_factory=lambda: str(uuid.uuid4()))
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    api: Literal["converse", "invoke_model"] = "converse"
    system: Annotated[
        list[Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | SystemCachePoint],
        Field(max_length=8, description="system prompts, and cache points between or after them"),
    ] = []
    messages: Annotated[list[Message], Field(max_length=MAX_MESSAGES)] = []
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)] | None = None
    body: dict[str, Any] | None = Field(None, description="native InvokeModel body (api=invoke_model)")
    inference: InferenceSettings = InferenceSettings()
    caller: CallerMetadata = CallerMetadata()
    reply: Annotated[dict[ShortText, ShortText], Field(max_length=MAX_REPLY_FIELDS)] = Field(
        {}, description="fields echoed back unchanged in the result event's detail.reply"
    )
    cache: ResponseCacheOption | None = Field(
        None, description="answer an identical deterministic request from the response cache"
    )

    @model_validator(mode="after")
    def _one_input_form(self) -> Self:
        if self.api == "invoke_model":
            if self.cache is not None:
                raise ValueError(f"`cache` answers only deterministic requests: {NOT_CONVERSE}")
            if self.body is None or self.messages or self.prompt is not None or self.system:
                raise ValueError("api=invoke_model takes a native `body` and no messages, prompt or system")
            return self
        if self.body is not None:
            raise ValueError("`body` is only for api=invoke_model")
        if bool(self.messages) == (self.prompt is not None):
            raise ValueError("give exactly one of `messages` or `prompt`")
        if self.messages and self.messages[0].role != "user":
            raise ValueError("the first message must have role 'user'")
        if sum(isinstance(item, str) for item in self.system) > MAX_SYSTEM_PROMPTS:
            raise ValueError(f"at most {MAX_SYSTEM_PROMPTS} system prompts (cache points aside)")
        if self.cache is not None and not_deterministic(self) is not None:
            raise ValueError(f"`cache` answers only deterministic requests: {not_deterministic(self)}")
        return self

    def converse_messages(self) -> list[dict[str, Any]]:
        """Messages in Converse shape (a plain prompt becomes one user message)."""
        if self.prompt is not None:
            return [{"role": "user", "content": [{"text": self.prompt}]}]
        return [m.model_dump(exclude_none=True) for m in self.messages]


NOT_CONVERSE = "api=invoke_model's native body is not judged (Converse only)"


def not_deterministic(request: InferenceRequest) -> str | None:
    """Why the request's answer may differ from one call to the next (None: deterministic). The one
    definition the response cache uses: a Converse request with `inference.temperature` 0 (greedy
    decoding; top_p then has no effect)."""
    if request.api != "converse":
        return NOT_CONVERSE
    if request.inference.temperature != 0:
        return "inference.temperature must be 0"
    return None
