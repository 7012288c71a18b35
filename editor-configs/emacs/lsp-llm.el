;;; lsp-llm.el --- lsp-llm with eglot  -*- lexical-binding: t; -*-

;; Load this file from your init.el (or paste it there). Needs Emacs 29+ (eglot built in).
;; Completions arrive through completion-at-point (eglot has no inline completion);
;; "Explain this code" and "Generate docstring" are also code actions (M-x eglot-code-actions).

(require 'eglot)

(defvar lsp-llm-command '("lsp-llm" "serve")
  "How to start the server.  For a shared daemon (lsp-llm serve --tcp):
'(\"lsp-llm\" \"connect\" \"127.0.0.1:2087\"), or eglot's own TCP form '(\"127.0.0.1\" 2087).")

(defvar lsp-llm-settings '(:docstringStyle "google")
  "Server settings (camelCase plist): :model, :backend, :device, :maxNewTokens, ...")

(add-to-list 'eglot-server-programs
             `((python-mode python-ts-mode js-mode js-ts-mode typescript-ts-mode
                go-mode go-ts-mode rust-mode rust-ts-mode c-mode c-ts-mode c++-mode c++-ts-mode
                java-mode java-ts-mode)
               . (,@lsp-llm-command :initializationOptions ,lsp-llm-settings)))

;; eglot pushes this with workspace/didChangeConfiguration.
(setq-default eglot-workspace-configuration `(:lspLlm ,lsp-llm-settings))

(defun lsp-llm--range ()
  "The region (or the current line) as an LSP range."
  (if (use-region-p)
      (list :start (eglot--pos-to-lsp-position (region-beginning))
            :end (eglot--pos-to-lsp-position (region-end)))
    (list :start (eglot--pos-to-lsp-position (line-beginning-position))
          :end (eglot--pos-to-lsp-position (line-end-position)))))

(defun lsp-llm-explain ()
  "Explain the region (or the current line) in a *lsp-llm explain* buffer."
  (interactive)
  (let* ((server (eglot--current-server-or-lose))
         (result (jsonrpc-request server :lspLlm/explain
                                  (list :textDocument (eglot--TextDocumentIdentifier)
                                        :range (lsp-llm--range))
                                  :timeout 300)))
    (with-current-buffer (get-buffer-create "*lsp-llm explain*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (plist-get result :text)))
      (when (fboundp 'markdown-mode) (markdown-mode))
      (display-buffer (current-buffer)))))

(defun lsp-llm-docstring ()
  "Write a docstring for the function at point."
  (interactive)
  (let* ((server (eglot--current-server-or-lose))
         (result (jsonrpc-request server :lspLlm/docstring
                                  (list :textDocument (eglot--TextDocumentIdentifier)
                                        :position (eglot--pos-to-lsp-position))
                                  :timeout 120)))
    (eglot--apply-workspace-edit (plist-get result :edit) this-command)))

(defun lsp-llm-status ()
  "Show the server status."
  (interactive)
  (let ((status (jsonrpc-request (eglot--current-server-or-lose) :lspLlm/status
                                 (make-hash-table))))
    (message "lsp-llm: %s, model %s on %s"
             (plist-get status :state) (plist-get status :model) (plist-get status :device))))

(defun lsp-llm-reindex ()
  "Rebuild the workspace index."
  (interactive)
  (eglot-execute-command (eglot--current-server-or-lose) "lspLlm.reindex" []))

(provide 'lsp-llm)
;;; lsp-llm.el ends here
