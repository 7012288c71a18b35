;;; driver.el --- drive Emacs + eglot + editor-configs/emacs/lsp-llm.el through lsp-llm  -*- lexical-binding: t; -*-

;; emacs -q --batch -l editor-configs/emacs/lsp-llm.el -l driver.el
;;   LSP_LLM_TEST_FILE  the Python file to open (its folder is a git repository)
;;   LSP_LLM_TEST_OUT   where the JSON result goes
;; Everything goes through eglot and the shipped lsp-llm.el, as an interactive session
;; would: completion-at-point with its exit function, the docstring command run as a
;; command (this-command set), the code actions as eglot's menu runs them.  Prompts
;; (y-or-n-p) are answered "yes" and recorded: the test asserts there were none.

(require 'json)
(require 'cl-lib)

(defvar drv-result nil)
(defvar drv-prompts nil)
(defvar drv-states nil)
(defun drv-put (key value) (setq drv-result (plist-put drv-result key value)))

(advice-add 'y-or-n-p :override (lambda (prompt &rest _) (push prompt drv-prompts) t))
(advice-add 'yes-or-no-p :override (lambda (prompt &rest _) (push prompt drv-prompts) t))
(advice-add 'lsp-llm--set-status :after
            (lambda (status &rest _)
              (push (list (plist-get status :state) (lsp-llm-mode-line)) drv-states)))

(defun drv-wait (pred what seconds)
  "Run the event loop until PRED is non-nil; error after SECONDS."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (not (setq value (funcall pred)))
      (when (> (float-time) deadline) (error "Timed out waiting for %s" what))
      (accept-process-output nil 0.1))
    value))

(defun drv-messages ()
  (with-current-buffer (get-buffer-create "*Messages*") (buffer-string)))

(defun drv-buffer-lines () (split-string (buffer-substring-no-properties (point-min) (point-max)) "\n"))

(defun drv-write ()
  (with-temp-file (getenv "LSP_LLM_TEST_OUT")
    (let ((json-encoding-pretty-print nil))
      (insert (json-encode
               (append drv-result
                       (list :prompts (vconcat (reverse drv-prompts))
                             :states (vconcat (mapcar #'vconcat (reverse drv-states)))
                             :messages (drv-messages))))))))

(defun drv-main ()
  (find-file (getenv "LSP_LLM_TEST_FILE"))
  (drv-put :emacs emacs-version)
  (drv-put :eglot (or (ignore-errors (package-get-version)) ""))
  (drv-put :mode (symbol-name major-mode))
  (apply #'eglot (eglot--guess-contact))
  (let ((server (drv-wait #'eglot-current-server "eglot to connect" 60)))
    (drv-put :server_class (symbol-name (eieio-object-class server)))
    (drv-wait (lambda ()
                (equal (plist-get (jsonrpc-request server :lspLlm/status (make-hash-table)) :state)
                       "ready"))
              "the model to be ready" 180)
    (lsp-llm-status)
    (drv-put :mode_line (lsp-llm-mode-line))

    ;; 1. Completion: the items' labels against their textEdit, then a real
    ;;    completion-at-point (one suggestion, so it is inserted at once).
    (goto-char (point-min))
    (search-forward "ret")
    (let* ((capf (eglot-completion-at-point))
           (table (nth 2 capf))
           (prefix (buffer-substring-no-properties (nth 0 capf) (nth 1 capf)))
           (candidates (all-completions prefix table))
           (items (mapcar (lambda (c) (get-text-property 0 'eglot--lsp-item c)) candidates)))
      (drv-put :completion_prefix prefix)
      (drv-put :completion_items
               (vconcat (mapcar (lambda (item)
                                  (list :label (plist-get item :label)
                                        :newText (plist-get (plist-get item :textEdit) :newText)))
                                items))))
    (let ((before (buffer-string)))
      (let ((completion-in-region-function
             ;; Vanilla completion with the whole label, as a user picking it would.
             (lambda (start end collection &optional predicate)
               (let* ((all (all-completions (buffer-substring start end) collection predicate))
                      (choice (car all))
                      (exit (plist-get completion-extra-properties :exit-function)))
                 (delete-region start end)
                 (goto-char start)
                 (insert choice)
                 (when exit (funcall exit choice 'finished))
                 t))))
        (completion-at-point))
      (drv-put :completion_inserted
               (let ((start (save-excursion (goto-char (point-min)) (search-forward "ret") (- (point) 3))))
                 (buffer-substring-no-properties start (point))))
      (erase-buffer)
      (insert before))

    ;; 2. Generate docstring, run as a command.
    (goto-char (point-min))
    (forward-char 4)
    (setq drv-prompts nil)
    (setq this-command 'lsp-llm-docstring)
    (let ((before (drv-buffer-lines)))
      (call-interactively #'lsp-llm-docstring)
      (drv-put :docstring_before (vconcat before))
      (drv-put :docstring_after (vconcat (drv-buffer-lines)))
      (drv-put :docstring_prompts (vconcat drv-prompts))
      (erase-buffer)
      (insert (mapconcat #'identity before "\n")))

    ;; 3. The code actions, run the way eglot's menu runs the chosen one.
    (goto-char (point-min))
    (let* ((actions (eglot-code-actions (point-min) (line-end-position 2)))
           (by-title (mapcar (lambda (a) (cons (plist-get a :title) a)) actions)))
      (drv-put :code_actions (vconcat (mapcar #'car by-title)))
      (let ((explain (cdr (assoc "Explain this code" by-title))))
        (when explain
          (let ((command (or (plist-get explain :command) explain)))
            (eglot-execute-command server (intern (plist-get command :command))
                                   (plist-get command :arguments)))
          (drv-put :explain_buffer
                   (let ((b (get-buffer lsp-llm-explain-buffer)))
                     (if b (with-current-buffer b (buffer-string)) "")))))
      (setq drv-prompts nil)
      (let ((docstring (cdr (assoc "Generate docstring" by-title)))
            (before (drv-buffer-lines)))
        (when docstring
          (let ((command (plist-get docstring :command)))
            (when (plist-get docstring :edit)
              (eglot--apply-workspace-edit (plist-get docstring :edit)))
            (when command
              (if (stringp command) ; a Command, not a CodeAction
                  (eglot-execute-command server (intern command)
                                         (plist-get docstring :arguments))
                (eglot-execute-command server (intern (plist-get command :command))
                                       (plist-get command :arguments)))))
          ;; The server may apply the edit itself (workspace/applyEdit): give it time.
          (drv-wait (lambda () (not (equal (drv-buffer-lines) before))) "the docstring edit" 60)
          (drv-put :action_docstring_after (vconcat (drv-buffer-lines)))
          (drv-put :action_docstring_prompts (vconcat drv-prompts)))))
    (drv-put :ok t)))

(condition-case err
    (drv-main)
  (error (drv-put :ok json-false) (drv-put :error (error-message-string err))))
(drv-write)
(kill-emacs 0)
;;; driver.el ends here
