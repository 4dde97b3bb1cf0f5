"""
Where everything lives in storage: Distribution's layout, byte for byte.

Every path is under ``/docker/registry/v2``; ``<name>`` may contain ``/``.
A ``link`` file holds a digest string (``sha256:ab…``) with no newline.
Anything spectroreg keeps that Distribution has no place for sits in
directories Distribution ignores: ``_uploads/<id>/spectroreg/`` and
``repositories/<name>/_referrers/``.
"""

ROOT = "/docker/registry/v2"
BLOBS = ROOT + "/blobs"
REPOSITORIES = ROOT + "/repositories"


def blob_dir(digest):
    return "{}/{}/{}/{}".format(BLOBS, digest.algorithm, digest.hex[:2], digest.hex)


def blob_data(digest):
    return blob_dir(digest) + "/data"


def repository(name):
    return "{}/{}".format(REPOSITORIES, name)


def layers(name):
    return repository(name) + "/_layers"


def layer_link(name, digest):
    return "{}/{}/{}/link".format(layers(name), digest.algorithm, digest.hex)


def layer_dir(name, digest):
    return "{}/{}/{}".format(layers(name), digest.algorithm, digest.hex)


def manifests(name):
    return repository(name) + "/_manifests"


def revisions(name):
    return manifests(name) + "/revisions"


def revision_dir(name, digest):
    return "{}/{}/{}".format(revisions(name), digest.algorithm, digest.hex)


def revision_link(name, digest):
    return revision_dir(name, digest) + "/link"


def tags(name):
    return manifests(name) + "/tags"


def tag_dir(name, tag):
    return "{}/{}".format(tags(name), tag)


def tag_current_link(name, tag):
    return tag_dir(name, tag) + "/current/link"


def tag_index_link(name, tag, digest):
    return "{}/index/{}/{}/link".format(tag_dir(name, tag), digest.algorithm, digest.hex)


def uploads(name):
    return repository(name) + "/_uploads"


def upload_dir(name, upload_id):
    return "{}/{}".format(uploads(name), upload_id)


def upload_data(name, upload_id):
    return upload_dir(name, upload_id) + "/data"


def upload_startedat(name, upload_id):
    return upload_dir(name, upload_id) + "/startedat"


def upload_verified(name, upload_id):
    """
    A link to the digest the upload's content was verified as, written
    before its data is moved to the blob. In the upload's own directory: on
    the filesystem, one directory flush makes its name durable.
    """
    return upload_dir(name, upload_id) + "/spectroreg-verified"


def upload_verified_before(name, upload_id):
    """Where earlier versions wrote L{upload_verified}: read too, for uploads they left."""
    return upload_dir(name, upload_id) + "/spectroreg/verified"


def referrers(name):
    return repository(name) + "/_referrers"


def referrers_complete(name):
    """Marker: the referrers index of C{name} covers every revision."""
    return referrers(name) + "/complete"


def referrers_subject_dir(name, subject):
    return "{}/subjects/{}/{}".format(referrers(name), subject.algorithm, subject.hex)


def referrer_entry(name, subject, digest):
    return "{}/{}/{}/descriptor".format(referrers_subject_dir(name, subject), digest.algorithm, digest.hex)
