# The spectroreg image: Debian 12 with spectroreg installed from its own
# Debian package, built from this source tree in the first stage.
#   docker build -t spectroreg .
#   docker run -d -p 5000:5000 -v registry-data:/data -v registry-auth:/auth spectroreg

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential devscripts equivs
WORKDIR /src/spectroreg
COPY debian/control debian/control
RUN mk-build-deps --install --remove --tool 'apt-get -y --no-install-recommends' debian/control
COPY . .
RUN dpkg-buildpackage -us -uc -b

FROM debian:bookworm-slim
COPY --from=build /src/spectroreg_*_all.deb /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/spectroreg_*_all.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/spectroreg_*_all.deb
# The image's default configuration: data under /data, users in
# /auth/htpasswd-basic (created with a generated password, logged once, when
# missing).
COPY etc/spectro/config.yml /etc/spectro/config.yml
EXPOSE 5000
VOLUME /data
CMD ["registry", "serve", "/etc/spectro/config.yml"]
