"""
The HTTP plumbing around the registry API: the root resource (liveness,
``http.prefix``), the Site (configured headers on every response, access log,
request-size limits, slow-client deadlines, draining on shutdown).
"""
