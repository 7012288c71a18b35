;;; lsp-llm.el --- lsp-llm with eglot  -*- lexical-binding: t; -*-

;; Load this file from your init.el (or paste it there).  Tested in CI with Emacs 28.2 and
;; eglot 1.9 (Debian 12's emacs-nox and elpa-eglot); Emacs 29+ has eglot built in.
;; Completions arrive through completion-at-point (eglot has no inline completion);
;; "Explain this code" and "Generate docstring" are also code actions (M-x eglot-code-actions).

(require 'cl-lib)
(require 'eglot)

(defvar lsp-llm-command '("lsp-llm" "serve")
  "How to start the server.  For a shared daemon (lsp-llm serve --tcp):
'(\"lsp-llm\" \"connect\" \"127.0.0.1:2087\"), or eglot's own TCP form '(\"127.0.0.1\" 2087).")

(defvar lsp-llm-settings '(:docstringStyle "google")
  "Server settings (camelCase plist): :model, :backend, :device, :maxNewTokens, ...")

(defvar lsp-llm-modes
  '(python-mode python-ts-mode js-mode js-ts-mode typescript-ts-mode
    go-mode go-ts-mode rust-mode rust-ts-mode c-mode c-ts-mode c++-mode c++-ts-mode
    java-mode java-ts-mode)
  "Major modes that get the lsp-llm server.")

(defvar lsp-llm-explain-buffer "*lsp-llm explain*"
  "Buffer that shows explanations (from `lsp-llm-explain' and the code action).")

(defclass lsp-llm-server (eglot-lsp-server) ()
  :documentation "The lsp-llm server: status in the mode line, explain and docstring commands.")

(add-to-list 'eglot-server-programs
             `(,lsp-llm-modes
               . (lsp-llm-server ,@lsp-llm-command :initializationOptions ,lsp-llm-settings)))

;; eglot pushes this with workspace/didChangeConfiguration.
(setq-default eglot-workspace-configuration `(:lspLlm ,lsp-llm-settings))

;;;; Status: the mode line says when the model is loading (requests answer nothing then).

(defvar lsp-llm--status nil "Last `lspLlm/statusChanged' (or `lspLlm/status') plist.")
(defvar lsp-llm--loading-told nil "Non-nil once the user was told the model is loading.")

(defun lsp-llm-mode-line ()
  "The lsp-llm part of the mode line: \"llm:loading\", \"llm:ready\", \"llm:error\"."
  (when lsp-llm--status
    (let ((state (plist-get lsp-llm--status :state)))
      (propertize (format " llm:%s" state)
                  'face (pcase state ("error" 'error) ("loading" 'warning) (_ nil))
                  'help-echo (format "lsp-llm: %s %s" state
                                     (or (plist-get lsp-llm--status :message) ""))))))

(add-to-list 'mode-line-misc-info '(:eval (lsp-llm-mode-line)))

(defun lsp-llm--tell-loading ()
  "Say once, in the echo area and *Messages*, that the model is still loading."
  (unless lsp-llm--loading-told
    (setq lsp-llm--loading-told t)
    (message "lsp-llm: loading the model %s; completions are empty until it is ready"
             (or (plist-get lsp-llm--status :model) ""))))

(defun lsp-llm--set-status (status)
  "Record STATUS (a plist) and tell the user about state changes."
  (let ((before (plist-get lsp-llm--status :state))
        (state (plist-get status :state)))
    (setq lsp-llm--status status)
    (pcase state
      ("loading" (lsp-llm--tell-loading))
      ("ready" (when (and lsp-llm--loading-told (not (equal before "ready")))
                 (message "lsp-llm: model %s ready" (or (plist-get status :model) ""))))
      ("error" (unless (equal before "error")
                 (message "lsp-llm: the model failed: %s" (or (plist-get status :message) "")))))
    (force-mode-line-update t)))

(cl-defmethod eglot-handle-notification
  ((_server lsp-llm-server) (_method (eql lspLlm/statusChanged)) &rest status)
  "Handle lspLlm/statusChanged: the model state for the mode line."
  (lsp-llm--set-status status))

(defun lsp-llm--completion-while-loading (&rest _)
  "Before a completion request: say why it will be empty while the model loads."
  (when (and (equal (plist-get lsp-llm--status :state) "loading")
             (cl-typep (eglot-current-server) 'lsp-llm-server))
    (lsp-llm--tell-loading)))

(advice-add 'eglot-completion-at-point :before #'lsp-llm--completion-while-loading)

;;;; Commands

(defun lsp-llm--server ()
  "The lsp-llm server of this buffer, told about the latest edits."
  (let ((server (eglot--current-server-or-lose)))
    (unless (cl-typep server 'lsp-llm-server)
      (user-error "The eglot server of this buffer is not lsp-llm"))
    ;; eglot sends didChange after an idle delay; our requests must see the text as it is.
    (eglot--signal-textDocument/didChange)
    server))

(defun lsp-llm--range ()
  "The region (or the current line) as an LSP range."
  (if (use-region-p)
      (list :start (eglot--pos-to-lsp-position (region-beginning))
            :end (eglot--pos-to-lsp-position (region-end)))
    (list :start (eglot--pos-to-lsp-position (line-beginning-position))
          :end (eglot--pos-to-lsp-position (line-end-position)))))

(defun lsp-llm--show-explanation (text)
  "Show TEXT in `lsp-llm-explain-buffer' and return that buffer."
  (with-current-buffer (get-buffer-create lsp-llm-explain-buffer)
    (let ((inhibit-read-only t))
      (erase-buffer)
      (insert text))
    (if (fboundp 'markdown-mode) (markdown-mode) (text-mode))
    (setq buffer-read-only t)
    (goto-char (point-min))
    (display-buffer (current-buffer))
    (current-buffer)))

(defun lsp-llm--explain (server text-document range)
  "Ask SERVER to explain RANGE of TEXT-DOCUMENT and show the answer in a buffer."
  (eglot--signal-textDocument/didChange)
  (message "lsp-llm: explaining…")
  (let ((result (jsonrpc-request server :lspLlm/explain
                                 (list :textDocument text-document :range range)
                                 :timeout 300)))
    (lsp-llm--show-explanation (plist-get result :text))
    (message "lsp-llm: explanation in %s" lsp-llm-explain-buffer)
    result))

(defun lsp-llm--apply-edit (edit)
  "Apply the WorkspaceEdit EDIT without asking: the user asked for it."
  (let ((eglot-confirm-server-initiated-edits nil))
    ;; eglot 1.9-1.15: (WEDIT &optional CONFIRM); later: (WEDIT ORIGIN).  nil never asks.
    (eglot--apply-workspace-edit edit nil)))

(defun lsp-llm--docstring (server text-document position)
  "Ask SERVER for a docstring at POSITION of TEXT-DOCUMENT and apply it."
  (eglot--signal-textDocument/didChange)
  (message "lsp-llm: writing a docstring…")
  (let ((result (jsonrpc-request server :lspLlm/docstring
                                 (list :textDocument text-document :position position)
                                 :timeout 120)))
    (lsp-llm--apply-edit (plist-get result :edit))
    result))

(defun lsp-llm-explain ()
  "Explain the region (or the current line) in the `lsp-llm-explain-buffer' buffer."
  (interactive)
  (lsp-llm--explain (lsp-llm--server) (eglot--TextDocumentIdentifier) (lsp-llm--range)))

(defun lsp-llm-docstring ()
  "Write a docstring for the function at point."
  (interactive)
  (lsp-llm--docstring (lsp-llm--server) (eglot--TextDocumentIdentifier)
                      (eglot--pos-to-lsp-position)))

(defun lsp-llm--code-action-command (server command arguments)
  "Run the code action COMMAND with ARGUMENTS on the client side, or return :server.
\"Explain this code\" goes to a buffer (the server would only send a message), and
\"Generate docstring\" is applied without the workspace/applyEdit prompt."
  (let ((name (format "%s" command)))
    (cond ((equal name "lspLlm.explain")
           (lsp-llm--explain server (list :uri (aref arguments 0)) (aref arguments 1)))
          ((equal name "lspLlm.generateDocstring")
           (lsp-llm--docstring server (list :uri (aref arguments 0)) (aref arguments 1)))
          (t :server))))

;; eglot <= 1.16 runs code-action commands through `eglot-execute-command'.
(cl-defmethod eglot-execute-command ((server lsp-llm-server) command arguments)
  "Explain and docstring commands run here; the others on the server."
  (let ((done (lsp-llm--code-action-command server command arguments)))
    (if (eq done :server) (cl-call-next-method) done)))

;; eglot 1.17+ (Emacs 30) runs them through `eglot-execute'.
(when (fboundp 'eglot-execute)
  (cl-defmethod eglot-execute ((server lsp-llm-server) action)
    "Explain and docstring commands run here; the others as eglot does."
    (let* ((command (plist-get action :command))
           (done (if (stringp command)
                     (lsp-llm--code-action-command server command
                                                   (plist-get action :arguments))
                   :server)))
      (if (eq done :server) (cl-call-next-method) done))))

(defun lsp-llm-status ()
  "Show the server status."
  (interactive)
  (let ((status (jsonrpc-request (lsp-llm--server) :lspLlm/status (make-hash-table))))
    (lsp-llm--set-status status)
    (message "lsp-llm: %s, model %s on %s"
             (plist-get status :state) (plist-get status :model) (plist-get status :device))))

(defun lsp-llm-reindex ()
  "Rebuild the workspace index."
  (interactive)
  (eglot-execute-command (lsp-llm--server) 'lspLlm.reindex []))

(provide 'lsp-llm)
;;; lsp-llm.el ends here
