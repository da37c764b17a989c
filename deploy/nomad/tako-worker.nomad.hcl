# tako's workers: one on every client of the worker pool, running jobs in
# the client's Docker Engine. The pool's clients set meta.tako_worker and
# let the docker plugin bind-mount host paths (README.md):
#
#   client { meta { tako_worker = "true" } }
#   plugin "docker" { config { volumes { enabled = true } } }
#
# Store the secrets first:
#
#   nomad var put nomad/jobs/tako-worker database_url=postgres://... api_key=...
job "tako-worker" {
  type        = "system"
  datacenters = ["*"]

  constraint {
    attribute = "${meta.tako_worker}"
    value     = "true"
  }

  group "worker" {
    network {
      port "http" {
        static = 8000
      }
    }

    service {
      name     = "tako-worker"
      provider = "nomad"
      port     = "http"
      tags     = ["prometheus"]

      meta {
        metrics_path = "/metrics"
      }

      check {
        name     = "health"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "tako" {
      driver = "docker"
      # Running jobs get 30 s to finish after SIGTERM, then the worker
      # removes its containers; the client's max_kill_timeout (30s by
      # default) caps this.
      kill_timeout = "60s"

      config {
        image = "tako-server:0.1.0-dev"
        args  = ["server"]
        # The egress proxy listens on the gateway address of a Docker
        # network that tako creates, which exists on the host's network only.
        network_mode = "host"
        volumes = [
          "/var/run/docker.sock:/var/run/docker.sock",
          # The same path as on the host: tako mounts slot directories into
          # job containers by their host path, and refuses to start when
          # the paths differ.
          "/var/lib/tako:/var/lib/tako",
        ]
      }

      env {
        TAKO_SERVER_ROLE = "worker"
        # Prometheus scrapes without a key.
        TAKO_METRICS_REQUIRE_AUTH = "false"
        TAKO_LOG_FORMAT           = "json"
      }

      # TAKO_DATABASE_URL and the API key (a worker listens on the network
      # for /health and /metrics, and tako refuses a network address without
      # API keys), from the job's Nomad variable.
      template {
        destination = "secrets/tako.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/tako-worker" -}}
          TAKO_DATABASE_URL={{ .database_url }}
          TAKO_AUTH_API_KEYS_DEFAULT={{ .api_key }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
