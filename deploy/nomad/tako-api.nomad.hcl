# tako's api: accepts executions and answers queries; the workers
# (tako-worker.nomad.hcl) run them. Store the secrets first (README.md):
#
#   nomad var put nomad/jobs/tako-api database_url=postgres://... api_key=...
job "tako-api" {
  type        = "service"
  datacenters = ["*"]

  group "api" {
    count = 2

    # Two api instances on two nodes, when there are two.
    spread {
      attribute = "${node.unique.id}"
    }

    network {
      port "http" {
        to = 8000
      }
    }

    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "5m"
      auto_revert      = true
    }

    service {
      name     = "tako-api"
      provider = "nomad"
      port     = "http"
      # Prometheus finds the scrape targets with nomad_sd_configs, keeping
      # the services tagged "prometheus" and using meta.metrics_path.
      tags = ["prometheus"]

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
      # Running requests get up to 30 s after SIGTERM; the client's
      # max_kill_timeout (30s by default) caps this.
      kill_timeout = "45s"

      config {
        image = "tako-server:0.1.0-dev"
        args  = ["server"]
        ports = ["http"]
      }

      env {
        TAKO_SERVER_ROLE = "api"
        # Prometheus scrapes without a key.
        TAKO_METRICS_REQUIRE_AUTH = "false"
        TAKO_LOG_FORMAT           = "json"
      }

      # TAKO_DATABASE_URL and the API key, from the job's Nomad variable.
      template {
        destination = "secrets/tako.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/tako-api" -}}
          TAKO_DATABASE_URL={{ .database_url }}
          TAKO_AUTH_API_KEYS_DEFAULT={{ .api_key }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
