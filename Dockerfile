# The spectroreg image: Debian 12 (bookworm-slim) with spectroreg installed
# from its own Debian package, built from this source tree in the first stage.
#   docker build -t spectroreg .
#   docker run -d -p 5000:5000 -v registry-data:/data -v registry-auth:/auth spectroreg
# README.md ("Container image") says what persists where and what each part
# of the image costs.

# Build stage: only the package's Build-Depends, without recommends and
# without build-essential (the package is architecture-independent Python;
# debhelper still brings gcc through libtool). The source tree and the build's
# leftovers go in the layer that made them: the stage keeps the .deb only.
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src/spectroreg
COPY debian/control debian/changelog debian/
RUN echo '#clear APT::Build-Essential;' > /etc/apt/apt.conf.d/90no-build-essential \
 && apt-get update \
 && apt-get build-dep -y --no-install-recommends . \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# -d: dpkg-checkbuilddeps would insist on build-essential too. The build runs
# the test suite, unless told not to:
#   docker build --build-arg DEB_BUILD_OPTIONS=nocheck -t spectroreg .
ARG DEB_BUILD_OPTIONS=
RUN dpkg-buildpackage -us -uc -b -d \
 && mkdir /out && mv ../spectroreg_*_all.deb /out/ \
 && cd / && rm -rf /src

FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# Files dpkg never unpacks in this image (see the file for what and why).
COPY etc/docker/dpkg-slim.cfg /etc/dpkg/dpkg.cfg.d/spectroreg-slim
COPY --from=build /out/spectroreg_*_all.deb /tmp/
# The service user with a fixed uid/gid (999), so that bind mounts can be
# chowned to it ahead of time; the package's postinst keeps an existing one.
RUN groupadd --system --gid 999 spectro \
 && useradd --system --uid 999 --gid spectro --home-dir /var/lib/spectro --no-create-home \
        --shell /usr/sbin/nologin --comment "spectroreg container registry" spectro \
 && apt-get update \
 && apt-get install -y --no-install-recommends /tmp/spectroreg_*_all.deb \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/lib/dpkg/*-old \
        /var/log/apt /var/log/dpkg.log /var/log/alternatives.log /tmp/spectroreg_*_all.deb \
# The test suites the Python libraries ship (Twisted's alone are 10 MB); not
# left to dpkg's path-exclude, as the packages' byte-compiling needs them.
 && find /usr/lib/python3/dist-packages -depth -type d \( -name test -o -name tests \) -exec rm -rf {} + \
# Byte-code only for the modules the registry loads (the service user cannot
# write it at run time; all of it would be 46 MB, this is a fraction).
 && find /usr/lib/python3 /usr/lib/python3.11 -depth -type d -name __pycache__ -exec rm -rf {} + \
 && python3 -c 'import spectroreg.cli, spectroreg.service, spectroreg.storage.s3.driver, \
        spectroreg.storage.s3.credentials, spectroreg.tls.acme.service, spectroreg.prefork, \
        spectroreg.worker, botocore.session, \
        botocore.credentials, twisted.scripts.twistd, twisted.plugins.spectroreg_plugin' \
 && ln -s /usr/bin/registry /registry \
 && install -d -o spectro -g spectro -m 0750 /data /auth
# The image's default configuration: data under /data, users in
# /auth/htpasswd-basic (created with a generated password, logged once, when
# missing).
COPY etc/spectro/config.yml /etc/spectro/config.yml
USER spectro:spectro
EXPOSE 5000
VOLUME ["/data", "/auth"]
CMD ["registry", "serve", "/etc/spectro/config.yml"]
