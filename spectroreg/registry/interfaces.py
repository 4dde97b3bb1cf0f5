"""
The registry's stores as interfaces: what the API, the web pages and
garbage collection may call. Every failure a client can cause is a
L{spectroreg.registry.errors.RegistryError}; names are repository names,
digests are L{spectroreg.registry.digests.Digest}s.
"""

from zope.interface import Attribute, Interface


class IBlobStore(Interface):
    """Blob data (global, by digest) and its links into repositories."""

    def stat_data(digest):
        """The blob, whatever repository holds it. @return: Deferred BlobDescriptor; BLOB_UNKNOWN."""

    def stat(name, digest):
        """The blob as repository C{name} holds it. @return: Deferred BlobDescriptor; BLOB_UNKNOWN."""

    def is_linked(name, digest):
        """@return: Deferred bool: whether C{name} holds C{digest} (layer or manifest)."""

    def read(digest, consumer, offset=0, length=None):
        """Stream the blob's bytes into C{consumer} (an IConsumer). BLOB_UNKNOWN when gone."""

    def redirect_url(digest, method="GET"):
        """@return: Deferred URL (str) the driver would have a client fetch from, or None."""

    def link(name, digest):
        """Link C{digest} into C{name} as a layer."""

    def link_revision(name, digest):
        """Link manifest C{digest} into C{name} as a revision."""

    def delete(name, digest):
        """Unlink layer C{digest} from C{name}. UNSUPPORTED (policy), BLOB_UNKNOWN."""

    def mount(name, digest, source=None):
        """Link a blob C{source} (or, None, any repository) holds. @return: Deferred BlobDescriptor or None."""

    def data_exists(digest):
        """@return: Deferred bool, asked of storage itself."""

    def forget_absent(digest):
        """@return: whether a stat of this process found C{digest} missing (forgetting it)."""

    def forget(digest):
        """Tell the caches the blob's data is gone (garbage collection). @return: Deferred."""

    def forget_revision(name, digest):
        """Tell the caches a revision is gone (garbage collection). @return: Deferred."""

    def unlinking(name, digest, remove):
        """Await C{remove()}, which deletes a link of C{digest} in C{name}, keeping the caches right."""


class IUploadWriter(Interface):
    """An open upload, held by its writer until closed, committed or cancelled."""

    name = Attribute("The repository name.")
    upload_id = Attribute("The upload's id (str).")
    size = Attribute("Bytes the upload holds so far.")
    open = Attribute("False once closed, committed or cancelled.")

    def write(data):
        """Append bytes. @return: Deferred firing when more may be written."""

    def close():
        """Persist what was written; the upload stays resumable. @return: Deferred."""

    def commit(digest):
        """Verify C{digest}, publish and link the blob, remove the upload. @return: Deferred BlobDescriptor."""

    def cancel():
        """Drop what was written and remove the upload. @return: Deferred."""


class IUploadStore(Interface):
    """Resumable uploads kept in storage."""

    def start(name):
        """@return: Deferred upload id (str). UNSUPPORTED in read-only mode."""

    def exists(name, upload_id):
        """@return: Deferred bool."""

    def size(name, upload_id):
        """@return: Deferred bytes received so far. BLOB_UPLOAD_UNKNOWN."""

    def open(name, upload_id, offset=None):
        """@return: Deferred IUploadWriter. BLOB_UPLOAD_UNKNOWN, UploadOffsetMismatch."""

    def cancel(name, upload_id):
        """Delete the upload. BLOB_UPLOAD_UNKNOWN."""

    def purge(older_than_seconds, dry_run=False):
        """Delete uploads started longer ago. @return: Deferred count."""


class IManifestStore(Interface):
    """Manifests by tag or digest."""

    cache = Attribute("The ManifestCache (for metrics).")

    def resolve(name, reference):
        """@return: Deferred Digest C{reference} (tag str or Digest) names. MANIFEST_UNKNOWN."""

    def get(name, reference):
        """@return: Deferred ManifestRecord. MANIFEST_UNKNOWN."""

    def put(name, reference, body, content_type=None):
        """Store a manifest. @return: Deferred (Digest, Manifest). MANIFEST_INVALID (ManifestTooLarge), ..."""

    def delete(name, reference):
        """Untag (tag), or delete the revision and its tags (digest). MANIFEST_UNKNOWN."""


class ITagStore(Interface):
    """A repository's tags."""

    def get(name, tag):
        """@return: Deferred Digest. MANIFEST_UNKNOWN."""

    def tag(name, tag, digest):
        """Point C{tag} at C{digest}."""

    def untag(name, tag):
        """Remove C{tag}. MANIFEST_UNKNOWN."""

    def untag_digest(name, digest):
        """Remove every tag naming C{digest}."""

    def all(name, must_exist=True):
        """@return: Deferred sorted list of tags. NAME_UNKNOWN."""


class IReferrerIndex(Interface):
    """The manifests whose subject is a given manifest."""

    def get(name, digest, artifact_type=None):
        """@return: Deferred list of descriptors (dicts), sorted by digest."""

    def add(name, digest, size, manifest):
        """Index a pushed manifest under its subject."""

    def remove(name, subject, digest):
        """Drop C{digest} from C{subject}'s referrers."""

    def rebuild(name):
        """Rebuild C{name}'s index from its revisions. @return: Deferred count."""


class ICatalog(Interface):
    """Which repositories exist."""

    def names():
        """@return: Deferred sorted list of repository names (those holding layers)."""

    def exists(name):
        """@return: Deferred bool: whether anything of C{name} is in storage."""


__all__ = ["IBlobStore", "IUploadWriter", "IUploadStore", "IManifestStore", "ITagStore", "IReferrerIndex",
           "ICatalog"]
