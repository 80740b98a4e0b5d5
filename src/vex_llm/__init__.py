"""vex-llm: one async interface in front of LLM providers, with a tenant-safe response cache.

from vex_llm import CachedProvider, LLMRequest, MockProvider

cached = CachedProvider.wrap(MockProvider.constant("hi"))
answer = await cached.complete(LLMRequest.simple("hello"))
"""

from vex_llm.cache import (
    KEY_VERSION,
    CachedProvider,
    CachedStream,
    CacheEntry,
    CacheOutcome,
    CacheResult,
    CacheStats,
    CacheStore,
    CacheStoreWithSyncOps,
    LeasePolicy,
    LeaseStore,
    LLMCacheConfig,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    StoreError,
    cache_key,
    open_store,
)
from vex_llm.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse
from vex_llm.errors import (
    AnswerTooLarge,
    AuthenticationFailed,
    CacheMiss,
    ConnectionFailed,
    InputTooLarge,
    InvalidResponse,
    LLMError,
    NotAvailable,
    RateLimited,
    RequestFailed,
    ServerError,
    Timeout,
)
from vex_llm.models import (
    DEFAULT_SYSTEM,
    CacheControl,
    Chunk,
    InputLimits,
    LLMRequest,
    LLMResponse,
    Message,
    Usage,
)
from vex_llm.provider import LLMProvider, WrapperProvider
from vex_llm.providers import (
    AnthropicProvider,
    MockProvider,
    OllamaProvider,
    OpenAICompatibleProvider,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SYSTEM",
    "KEY_VERSION",
    "AnswerTooLarge",
    "AnthropicProvider",
    "AuthenticationFailed",
    "CacheControl",
    "CacheEntry",
    "CacheMiss",
    "CacheOutcome",
    "CacheResult",
    "CacheStats",
    "CacheStore",
    "CacheStoreWithSyncOps",
    "CachedProvider",
    "CachedStream",
    "Chunk",
    "ConnectionFailed",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "InputLimits",
    "InputTooLarge",
    "InvalidResponse",
    "LLMCacheConfig",
    "LLMError",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "LeasePolicy",
    "LeaseStore",
    "MemoryStore",
    "Message",
    "MockProvider",
    "NotAvailable",
    "OllamaProvider",
    "OpenAICompatibleProvider",
    "RateLimited",
    "RedisStore",
    "RequestFailed",
    "SQLiteStore",
    "ServerError",
    "StoreError",
    "Timeout",
    "Usage",
    "WrapperProvider",
    "__version__",
    "cache_key",
    "open_store",
]


def __getattr__(name: str) -> object:
    # Deprecated names, resolved (with a DeprecationWarning) where they are defined.
    if name == "SyncCacheStore":
        from vex_llm.cache.stores import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
